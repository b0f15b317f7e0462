// Managed prepared statements against what a user writes by hand: point lookups by primary key
// over N tenant schemas (each tenant's SQL is a distinct statement), raw pg unnamed, raw pg with
// one named statement per tenant, SchemaDb with statements off, and SchemaDb with the managed
// per-connection LRU at several sizes. Same pool size, concurrency and seeds for every variant;
// every row is checked to be the asked tenant's. Server memory is read on each pooled connection.
// Each variant prepares what it needs per tenant once, before the rounds, and looks it up per
// query: the raw variants their SQL text (and name), the SchemaDb variants a manager per tenant,
// made once with withSchema(), as the module does (its tenant registry keeps one manager per
// tenant). Making a manager per query (root.withSchema(tenant) in the loop) would add the
// schema-name check and two allocations per query that an application does not pay.
// The warm-up lasts until each tenant has been looked up about 5 times per connection (see
// warmUp), so every variant is measured in its steady state, also on a slow or busy machine.
import { performance } from 'node:perf_hooks';
import { quoteIdentifier, SchemaDb } from '../../dist/index.js';
import { backendPids, serverCpuMicros } from '../lib/backend-cpu.mjs';
import { canReadMemory, memoryPerConnection } from '../lib/backend-memory.mjs';
import { runClosedLoop } from '../lib/load.mjs';
import { createPool } from '../lib/postgres.mjs';
import { max, median, min, percentile, round } from '../lib/stats.mjs';
import { fmtFixed, fmtInt } from '../lib/table.mjs';
import { createTenants, tenantName } from '../lib/tenant-schemas.mjs';
import { openEntries, tally, warm } from '../lib/lookup-entries.mjs';

const ROWS_PER_TENANT = 100;
const CONCURRENCY = 32;
const BUDGET = 10;
const WARM_USES = 5;
const WARM_LIMIT_MS = 30_000;

const FULL = {
  tenantCounts: [100, 1000],
  lruSizes: [100, 250, 500],
  rounds: 5,
  roundMs: 5000,
  warmupMs: 3000,
};
const QUICK = { tenantCounts: [20, 200], lruSizes: [50], rounds: 2, roundMs: 800, warmupMs: 400 };

const TEMPLATE_SQL = 'SELECT id, tenant, payload FROM {{tables.items}} WHERE id = $1';
const qualifiedSql = (schema) =>
  `SELECT id, tenant, payload FROM ${quoteIdentifier(schema)}."items" WHERE id = $1`;

/**
 * Warms `entry` for `warmupMs`, then on until it has run about WARM_USES lookups per tenant and
 * connection, at most WARM_LIMIT_MS: the rounds measure the steady state, where each connection
 * has prepared each tenant's statement (named: at its first use; managed: at its
 * `prepareThreshold`-th, 2 by default), whatever the machine's speed.
 */
async function warmUp(entry, tenantCount, warmupMs) {
  const started = performance.now();
  let operations = 0;
  let seed = 1e6;
  do {
    const res = await warm(entry, { concurrency: CONCURRENCY, durationMs: warmupMs, seed });
    operations += res.operations;
    seed += 1000;
  } while (
    operations < tenantCount * BUDGET * WARM_USES &&
    performance.now() - started < WARM_LIMIT_MS
  );
}

/** One manager per tenant, made once, sharing `root`'s pool, templates and statements. */
const managersByTenant = (root, tenants) => new Map(tenants.map((t) => [t, root.withSchema(t)]));

function defineVariants(url, lruSizes) {
  const pool = (key) =>
    createPool({
      connectionString: url,
      max: BUDGET,
      idleTimeoutMillis: 0,
      application_name: `bench_ps_${key}`,
    });
  const managed = (key, maxPerConnection) => ({
    key,
    label: `SchemaDb, managed statements, maxPerConnection ${maxPerConnection}`,
    open(tenants) {
      const p = pool(key);
      const root = SchemaDb.create(p, null, {
        preparedStatements: { enabled: true, maxPerConnection },
      });
      const db = managersByTenant(root, tenants);
      return {
        pool: p,
        lookup: (tenant, id) => db.get(tenant).fetchOne(TEMPLATE_SQL, [id]),
        statementStats: () => root.statementStats,
      };
    },
  });
  return [
    {
      key: 'raw',
      label: 'raw pg, unnamed (pool.query, hand-qualified SQL)',
      open(tenants) {
        const p = pool('raw');
        const sql = new Map(tenants.map((t) => [t, qualifiedSql(t)]));
        return {
          pool: p,
          lookup: async (tenant, id) => (await p.query(sql.get(tenant), [id])).rows[0],
        };
      },
    },
    {
      key: 'named',
      label: 'raw pg, one named statement per tenant (unbounded)',
      open(tenants) {
        const p = pool('named');
        const q = new Map(tenants.map((t) => [t, { name: `lookup_${t}`, text: qualifiedSql(t) }]));
        return {
          pool: p,
          lookup: async (tenant, id) => (await p.query({ ...q.get(tenant), values: [id] })).rows[0],
        };
      },
    },
    {
      key: 'off',
      label: 'SchemaDb, statements off',
      open(tenants) {
        const p = pool('off');
        const db = managersByTenant(SchemaDb.create(p, null), tenants);
        return {
          pool: p,
          lookup: (tenant, id) => db.get(tenant).fetchOne(TEMPLATE_SQL, [id]),
        };
      },
    },
    managed('managed', 1000),
    ...lruSizes.map((size) => managed(`lru${size}`, size)),
  ];
}

export default {
  name: 'prepared-statements',
  description:
    'Point lookups: managed prepared statements (LRU per connection) vs raw pg unnamed and named, hit rate and server memory',

  async run(ctx) {
    const config = ctx.quick ? QUICK : FULL;
    const database = await ctx.createDatabase('bench_prepared');
    const url = database.url;
    const notes = [];
    if (ctx.quick)
      notes.push(
        `quick mode: ${config.tenantCounts.join(' and ')} tenants, LRU ${config.lruSizes.join(', ')}, ${config.rounds} rounds of ${config.roundMs / 1000} s (full: 100 and 1000 tenants, LRU 100/250/500/1000, 5 rounds of 5 s)`,
      );
    const variants = defineVariants(url, config.lruSizes);
    const results = [];
    const failures = [];
    let created = 0;
    let memoryReadable;

    for (const tenantCount of config.tenantCounts) {
      await createTenants(url, created, tenantCount, ROWS_PER_TENANT);
      created = tenantCount;
      ctx.log(`${tenantCount} tenants ready`);
      const tenants = Array.from({ length: tenantCount }, (_, i) => tenantName(i));
      // The LRU sweep only means something when the tenants outnumber the smallest size.
      const here = variants.filter(
        (v) => !v.key.startsWith('lru') || Number(v.key.slice(3)) < tenantCount,
      );
      const entries = openEntries(here, tenants, ROWS_PER_TENANT);
      try {
        for (const entry of entries) {
          await warmUp(entry, tenantCount, config.warmupMs);
          entry.pids = await backendPids(entry.instance.pool, BUDGET);
        }
        for (let r = 0; r < config.rounds; r++) {
          const order = entries.map((_, i) => entries[(i + r) % entries.length]);
          for (const entry of order) {
            const before = entry.instance.statementStats?.();
            const cpuBefore = entry.pids && serverCpuMicros(entry.pids);
            const res = await runClosedLoop({
              concurrency: CONCURRENCY,
              durationMs: config.roundMs,
              seed: 3e6 + r * 1000,
              operation: entry.operation,
            });
            tally(entry, res);
            const after = entry.instance.statementStats?.();
            const serverCpu = entry.pids && serverCpuMicros(entry.pids) - cpuBefore;
            const sorted = res.latencies.sorted();
            const hits = after ? after.hits - before.hits : undefined;
            const lookups = after ? hits + after.misses - before.misses : undefined;
            entry.rounds.push({
              qps: round(res.operations / (res.elapsedMs / 1000)),
              p50Ms: round(percentile(sorted, 50), 3),
              p99Ms: round(percentile(sorted, 99), 3),
              ...(entry.pids ? { serverCpuUsPerQuery: round(serverCpu / res.operations, 1) } : {}),
              clientCpuUsPerQuery: round((res.cpu.user + res.cpu.system) / res.operations, 1),
              ...(after ? { hitRate: lookups ? round(hits / lookups, 4) : 0 } : {}),
            });
            ctx.log(
              `  N=${tenantCount} round ${r + 1}/${config.rounds} ${entry.variant.key.padEnd(8)} ${fmtInt(entry.rounds.at(-1).qps).padStart(7)} q/s  server ${entry.rounds.at(-1).serverCpuUsPerQuery ?? '?'} µs/q${after ? `  hit rate ${(entry.rounds.at(-1).hitRate * 100).toFixed(1)}%` : ''}`,
            );
          }
        }
        memoryReadable ??= await canReadMemory(entries[0].instance.pool);
        const baseline = median(entries[0].rounds.map((x) => x.qps));
        const named = median(entries[1].rounds.map((x) => x.qps));
        for (const entry of entries) {
          const qps = entry.rounds.map((x) => x.qps);
          const memory = memoryReadable
            ? await memoryPerConnection(entry.instance.pool, BUDGET)
            : undefined;
          const v = {
            tenants: tenantCount,
            variant: entry.variant.key,
            label: entry.variant.label,
            qps: round(median(qps)),
            qpsMin: round(min(qps)),
            qpsMax: round(max(qps)),
            ratioToRaw: round(median(qps) / baseline, 3),
            ratioToNamed: round(median(qps) / named, 3),
            p99Ms: round(median(entry.rounds.map((x) => x.p99Ms)), 3),
            clientCpuUsPerQuery: median(entry.rounds.map((x) => x.clientCpuUsPerQuery)),
            ...(entry.pids
              ? { serverCpuUsPerQuery: median(entry.rounds.map((x) => x.serverCpuUsPerQuery)) }
              : {}),
            ...(entry.rounds[0].hitRate !== undefined
              ? { hitRate: median(entry.rounds.map((x) => x.hitRate)) }
              : {}),
            ...(memory ?? {}),
            mismatches: entry.mismatches,
            errors: entry.errors,
            rounds: entry.rounds,
          };
          results.push(v);
          if (v.mismatches > 0)
            failures.push(`N=${tenantCount} ${v.label}: ${v.mismatches} wrong or missing rows`);
          if (v.errors > 0)
            failures.push(
              `N=${tenantCount} ${v.label}: ${v.errors} queries failed (first: ${entry.firstError?.message})`,
            );
        }
      } finally {
        await Promise.allSettled(entries.map((e) => e.instance.pool.end()));
      }
    }
    if (memoryReadable === false)
      notes.push('server memory not shown: pg_backend_memory_contexts needs PostgreSQL 14+');

    const pct = (v) => (v === undefined ? '' : `${(v * 100).toFixed(1)}%`);
    const keys = [...new Set(results.map((r) => r.variant))];
    return {
      failures,
      notes,
      data: {
        config: {
          ...config,
          rowsPerTenant: ROWS_PER_TENANT,
          concurrency: CONCURRENCY,
          connections: BUDGET,
        },
        results,
      },
      tables: [
        {
          title: `Prepared statements: point lookups, ${CONCURRENCY} workers, ${BUDGET} connections, median of ${config.rounds} rounds × ${config.roundMs / 1000} s; memory = mean per pooled connection after the rounds`,
          columns: [
            { key: 'tenants', label: 'tenants' },
            { key: 'label', label: 'variant', align: 'left' },
            { key: 'qps', label: 'queries/s', format: fmtInt },
            { key: 'ratioToRaw', label: 'vs raw', format: fmtFixed(2) },
            { key: 'ratioToNamed', label: 'vs named', format: fmtFixed(2) },
            { key: 'p99Ms', label: 'p99 ms', format: fmtFixed(2) },
            {
              key: 'serverCpuUsPerQuery',
              label: 'server CPU µs/q',
              format: (v) => (v === undefined ? '' : v.toFixed(1)),
            },
            { key: 'clientCpuUsPerQuery', label: 'client CPU µs/q', format: fmtFixed(1) },
            { key: 'hitRate', label: 'hit rate', format: pct },
            { key: 'statements', label: 'stmts/conn' },
            {
              key: 'plansMiB',
              label: 'plans MiB/conn',
              format: (v) => (v === undefined ? '' : v.toFixed(1)),
            },
            {
              key: 'totalMiB',
              label: 'total MiB/conn',
              format: (v) => (v === undefined ? '' : v.toFixed(1)),
            },
            { key: 'errors', label: 'errors' },
          ],
          rows: results,
        },
      ],
      chart: {
        title: 'Prepared statements: point lookups (queries/s, higher is better)',
        unit: 'queries/s',
        series: keys.map((k, i) => ({
          key: k,
          label: results.find((r) => r.variant === k).label,
          color: ['#4e79a7', '#a0cbe8', '#f28e2b', '#b6561a', '#e15759', '#ff9d9a', '#ffbe7d'][
            i % 7
          ],
        })),
        groups: config.tenantCounts.map((n) => ({
          label: `${n} tenants`,
          values: Object.fromEntries(
            results.filter((r) => r.tenants === n).map((r) => [r.variant, r.qps]),
          ),
        })),
      },
    };
  },
};
