// Point lookups by primary key across many tenant schemas, through several ways of reaching a
// tenant's table, at the same concurrency and (except one labelled reference) the same
// connection budget. Every returned row is checked to belong to the tenant that was asked for.
import { quoteIdentifier, SchemaDb } from '../../dist/index.js';
import { ConnectionMonitor } from '../lib/connection-monitor.mjs';
import { runClosedLoop } from '../lib/load.mjs';
import { createPool, serverInfo } from '../lib/postgres.mjs';
import { max, median, min, percentile, round } from '../lib/stats.mjs';
import { fmtFixed, fmtInt } from '../lib/table.mjs';
import { TenantPools } from '../lib/tenant-pools.mjs';
import { createTenants, tenantName } from '../lib/tenant-schemas.mjs';
import { openEntries, tally, warm } from '../lib/lookup-entries.mjs';

const ROWS_PER_TENANT = 100;
const CONCURRENCY = 32;
const BUDGET = 10;
const WIDE_BUDGET = 200;

const FULL = {
  tenantCounts: [100, 1000],
  rounds: 5,
  roundMs: 5000,
  warmupMs: 3000,
  preRoundMs: 500,
};
const QUICK = { tenantCounts: [20, 100], rounds: 2, roundMs: 800, warmupMs: 300, preRoundMs: 100 };

const COLUMNS = 'id, tenant, payload';
const TEMPLATE_SQL = `SELECT ${COLUMNS} FROM {{tables.items}} WHERE id = $1`;
const UNQUALIFIED_SQL = `SELECT ${COLUMNS} FROM items WHERE id = $1`;
const qualifiedSql = (schema) =>
  `SELECT ${COLUMNS} FROM ${quoteIdentifier(schema)}."items" WHERE id = $1`;

/**
 * The variants. `open(tenants)` builds whatever the approach keeps per tenant and returns
 * `lookup(tenant, id)` resolving to the row (or undefined) and `close()`.
 */
function defineVariants(url, wideBudget) {
  const sharedPool = (applicationName) =>
    createPool({
      connectionString: url,
      max: BUDGET,
      idleTimeoutMillis: 0,
      application_name: applicationName,
    });

  const searchPath = (key, reset) => ({
    key,
    open(tenants) {
      const pool = sharedPool(`bench_${key}`);
      const setSql = new Map(tenants.map((t) => [t, `SET search_path TO ${quoteIdentifier(t)}`]));
      return {
        async lookup(tenant, id) {
          const client = await pool.connect();
          let failure;
          try {
            await client.query(setSql.get(tenant));
            const { rows } = await client.query(UNQUALIFIED_SQL, [id]);
            if (reset) await client.query('RESET search_path');
            return rows[0];
          } catch (err) {
            failure = err;
            throw err;
          } finally {
            client.release(failure);
          }
        },
        close: () => pool.end(),
      };
    },
  });

  const perTenantPools = (key, budget) => ({
    key,
    budget,
    open() {
      const pools = new TenantPools({
        budget,
        perTenant: 1,
        makePool: (tenant, max) =>
          createPool({
            connectionString: url,
            max,
            idleTimeoutMillis: 0, // eviction, not a timer, closes them: the cap is exact
            application_name: `bench_${key}`,
            options: `-c search_path=${tenant}`, // generated names need no quoting
          }),
      });
      return {
        async lookup(tenant, id) {
          return (await pools.query(tenant, UNQUALIFIED_SQL, [id])).rows[0];
        },
        close: () => pools.close(),
        stats: () => ({ ...pools.stats }),
      };
    },
  });

  const variants = [
    {
      key: 'a',
      open(tenants) {
        const pool = sharedPool('bench_a');
        const sql = new Map(tenants.map((t) => [t, qualifiedSql(t)]));
        return {
          async lookup(tenant, id) {
            return (await pool.query(sql.get(tenant), [id])).rows[0];
          },
          close: () => pool.end(),
        };
      },
    },
    {
      // What a user would write by hand for speed: one named statement per tenant's SQL, kept
      // by pg on every connection for its lifetime (no bound, no recovery after a migration).
      key: 'a2',
      open(tenants) {
        const pool = sharedPool('bench_a2');
        const queries = new Map(
          tenants.map((t) => [t, { name: `lookup_${t}`, text: qualifiedSql(t) }]),
        );
        return {
          async lookup(tenant, id) {
            return (await pool.query({ ...queries.get(tenant), values: [id] })).rows[0];
          },
          close: () => pool.end(),
        };
      },
    },
    {
      key: 'b',
      open(tenants) {
        const pool = sharedPool('bench_b');
        const dbs = new Map(tenants.map((t) => [t, SchemaDb.create(pool, t)]));
        return {
          lookup(tenant, id) {
            return dbs.get(tenant).fetchOne(TEMPLATE_SQL, [id]);
          },
          close: () => pool.end(),
        };
      },
    },
    {
      // Tenants known only at request time: one default manager, withSchema() per query.
      key: 'b2',
      open() {
        const pool = sharedPool('bench_b2');
        const root = SchemaDb.create(pool, null);
        return {
          lookup(tenant, id) {
            return root.withSchema(tenant).fetchOne(TEMPLATE_SQL, [id]);
          },
          close: () => pool.end(),
        };
      },
    },
    {
      // The module's managed statements (its default, 'auto', resolves to on here).
      key: 'b3',
      open() {
        const pool = sharedPool('bench_b3');
        const root = SchemaDb.create(pool, null, { preparedStatements: true });
        return {
          lookup(tenant, id) {
            return root.withSchema(tenant).fetchOne(TEMPLATE_SQL, [id]);
          },
          close: () => pool.end(),
          statementStats: () => root.statementStats,
        };
      },
    },
    searchPath('c', false),
    searchPath('c2', true),
    perTenantPools('d', BUDGET),
  ];
  if (wideBudget !== undefined) variants.push(perTenantPools('d2', wideBudget));
  return variants;
}

const LABELS = {
  a: '(a) pg.Pool.query, hand-qualified SQL',
  a2: '(a2) as (a), named statement per tenant (hand-written)',
  b: '(b) SchemaDb.fetchOne, {{tables.items}}, statements off',
  b2: '(b2) as (b), withSchema(tenant) per query',
  b3: '(b3) as (b2), managed prepared statements (default)',
  c: '(c) connect + SET search_path + query',
  c2: '(c2) as (c) + RESET search_path',
  d: `(d) pool per tenant, ${BUDGET} conns total (LRU)`,
  d2: `(d2) pool per tenant, up to ${WIDE_BUDGET} conns (over budget)`,
};
// Related variants share a hue: the module's path orange, search_path green, pools per tenant red.
const COLORS = {
  a: '#4e79a7',
  a2: '#a0cbe8',
  b: '#f28e2b',
  b2: '#ffbe7d',
  b3: '#b6561a',
  c: '#59a14f',
  c2: '#8cd17d',
  d: '#e15759',
  d2: '#ff9d9a',
};
const SHORT = {
  a: '(a) pool.query',
  a2: '(a2) named',
  b: '(b) SchemaDb',
  b2: '(b2) withSchema',
  b3: '(b3) prepared',
  c: '(c) search_path',
  c2: '(c2) +RESET',
  d: '(d) pool/tenant',
  d2: '(d2) pool/tenant wide',
};

/** Share of prepared lookups that reused a statement between two `statementStats` readings. */
function hitRate(before, after) {
  const hits = after.hits - before.hits;
  const lookups = hits + after.misses - before.misses;
  return lookups === 0 ? 0 : round(hits / lookups, 4);
}

export default {
  name: 'point-lookups',
  description:
    'Random primary-key lookups across N tenant schemas: raw pool vs SchemaDb vs search_path vs pool per tenant',

  async run(ctx) {
    const config = ctx.quick ? QUICK : FULL;
    const database = await ctx.createDatabase('bench_lookups');
    const url = database.url;

    // Leave room for the other variants' idle pools, the monitor and other clients.
    const info = await serverInfo(url);
    const room = info.max_connections - info.reserved - info.in_use - 6 * BUDGET - 10;
    const wideBudget = Math.min(WIDE_BUDGET, room);
    const notes = [];
    if (wideBudget < 2 * BUDGET)
      notes.push(
        `(d2) skipped: max_connections ${info.max_connections} leaves room for ${room} connections`,
      );
    const variants = defineVariants(url, wideBudget >= 2 * BUDGET ? wideBudget : undefined);
    if (ctx.quick)
      notes.push(
        `quick mode: ${config.tenantCounts.join(' and ')} tenants, ${config.rounds} rounds of ${config.roundMs / 1000} s (full: 100 and 1000 tenants, 5 rounds of 5 s)`,
      );
    for (const n of notes) ctx.log(n);

    const monitor = await ConnectionMonitor.open(url);
    ctx.defer(() => monitor.close());
    const results = [];
    const failures = [];
    let created = 0;
    let peakSessions = 0;

    for (const tenantCount of config.tenantCounts) {
      const t0 = performance.now();
      await createTenants(url, created, tenantCount, ROWS_PER_TENANT);
      created = tenantCount;
      const setupSeconds = (performance.now() - t0) / 1000;
      ctx.log(`${tenantCount} tenants ready (${setupSeconds.toFixed(1)} s to create)`);
      const tenants = Array.from({ length: tenantCount }, (_, i) => tenantName(i));

      const open = [];
      try {
        const entries = openEntries(variants, tenants, ROWS_PER_TENANT);
        open.push(...entries.map((e) => e.instance));

        for (const entry of entries) {
          ctx.log(`  warm-up ${SHORT[entry.variant.key]}`);
          await warm(entry, { concurrency: CONCURRENCY, durationMs: config.warmupMs, seed: 1e6 });
        }
        for (let r = 0; r < config.rounds; r++) {
          // Rotate the order each round so no variant always runs first or last.
          const order = entries.map((_, i) => entries[(i + r) % entries.length]);
          for (const entry of order) {
            await warm(entry, {
              concurrency: CONCURRENCY,
              durationMs: config.preRoundMs,
              seed: 2e6 + r * 1000,
            });
            const before = entry.instance.stats?.();
            const statementsBefore = entry.instance.statementStats?.();
            monitor.reset();
            const res = await runClosedLoop({
              concurrency: CONCURRENCY,
              durationMs: config.roundMs,
              seed: 3e6 + r * 1000,
              operation: entry.operation,
            });
            tally(entry, res);
            const sorted = res.latencies.sorted();
            const after = entry.instance.stats?.();
            const statementsAfter = entry.instance.statementStats?.();
            entry.rounds.push({
              queries: res.operations,
              seconds: round(res.elapsedMs / 1000, 3),
              qps: round(res.operations / (res.elapsedMs / 1000)),
              p50Ms: round(percentile(sorted, 50), 3),
              p99Ms: round(percentile(sorted, 99), 3),
              maxMs: round(sorted[sorted.length - 1], 2),
              clientCpuUsPerQuery: round((res.cpu.user + res.cpu.system) / res.operations, 2),
              clientCpuUserUsPerQuery: round(res.cpu.user / res.operations, 2),
              mismatches: res.mismatches,
              errors: res.errors,
              peakConnections: await monitor.peak(`bench_${entry.variant.key}`),
              peakSessionsOnDatabase: monitor.peakTotal,
              ...(before
                ? {
                    poolsOpened: after.opened - before.opened,
                    poolsEvicted: after.evicted - before.evicted,
                  }
                : {}),
              ...(statementsBefore
                ? { statementHitRate: hitRate(statementsBefore, statementsAfter) }
                : {}),
            });
            const last = entry.rounds.at(-1);
            peakSessions = Math.max(peakSessions, last.peakSessionsOnDatabase);
            ctx.log(
              `  N=${tenantCount} round ${r + 1}/${config.rounds} ${SHORT[entry.variant.key].padEnd(22)} ${fmtInt(last.qps).padStart(7)} q/s  p50 ${last.p50Ms.toFixed(2)} ms  p99 ${last.p99Ms.toFixed(2)} ms  client CPU ${last.clientCpuUsPerQuery.toFixed(1)} µs/q  conns ${last.peakConnections}`,
            );
          }
        }

        const baseline = median(entries[0].rounds.map((x) => x.qps));
        for (const entry of entries) {
          const qps = entry.rounds.map((x) => x.qps);
          const v = {
            tenants: tenantCount,
            variant: entry.variant.key,
            label: LABELS[entry.variant.key],
            connectionBudget: entry.variant.budget ?? BUDGET,
            qps: round(median(qps)),
            qpsMin: round(min(qps)),
            qpsMax: round(max(qps)),
            ratioToA: round(median(qps) / baseline, 3),
            ...(entry.rounds[0].statementHitRate !== undefined
              ? { statementHitRate: median(entry.rounds.map((x) => x.statementHitRate)) }
              : {}),
            p50Ms: round(median(entry.rounds.map((x) => x.p50Ms)), 3),
            p99Ms: round(median(entry.rounds.map((x) => x.p99Ms)), 3),
            clientCpuUsPerQuery: round(median(entry.rounds.map((x) => x.clientCpuUsPerQuery)), 2),
            peakConnections: max(entry.rounds.map((x) => x.peakConnections)),
            mismatches: entry.mismatches,
            errors: entry.errors,
            firstError: entry.firstError
              ? String(entry.firstError.message ?? entry.firstError)
              : undefined,
            rounds: entry.rounds,
          };
          results.push(v);
          if (v.mismatches > 0)
            failures.push(
              `N=${tenantCount} ${v.label}: ${v.mismatches} lookups returned a row of another tenant or no row`,
            );
          if (v.errors > 0)
            failures.push(
              `N=${tenantCount} ${v.label}: ${v.errors} queries failed (first: ${v.firstError})`,
            );
        }
      } finally {
        await Promise.allSettled(open.map((o) => o.close()));
      }
    }
    await monitor.close();

    const variantKeys = [...new Set(results.map((r) => r.variant))];
    return {
      failures,
      notes,
      data: {
        config: {
          ...config,
          rowsPerTenant: ROWS_PER_TENANT,
          concurrency: CONCURRENCY,
          connectionBudget: BUDGET,
          wideBudget: variantKeys.includes('d2') ? wideBudget : null,
        },
        serverMaxConnections: info.max_connections,
        peakSessionsOnDatabase: peakSessions,
        results,
      },
      tables: [
        {
          title: `Point lookups: ${CONCURRENCY} concurrent workers, ${BUDGET} connections (d2: up to ${variantKeys.includes('d2') ? wideBudget : '—'}), median of ${config.rounds} rounds × ${config.roundMs / 1000} s`,
          columns: [
            { key: 'tenants', label: 'tenants' },
            { key: 'label', label: 'variant', align: 'left' },
            { key: 'qps', label: 'queries/s', format: fmtInt },
            { key: 'ratioToA', label: 'vs (a)', format: fmtFixed(2) },
            { key: 'p50Ms', label: 'p50 ms', format: fmtFixed(2) },
            { key: 'p99Ms', label: 'p99 ms', format: fmtFixed(2) },
            { key: 'clientCpuUsPerQuery', label: 'client CPU µs/q', format: fmtFixed(1) },
            {
              key: 'range',
              label: 'q/s range (rounds)',
              format: (_, r) => `${fmtInt(r.qpsMin)}–${fmtInt(r.qpsMax)}`,
            },
            { key: 'peakConnections', label: 'conns' },
            {
              key: 'statementHitRate',
              label: 'stmt hits',
              format: (v) => (v === undefined ? '' : `${(v * 100).toFixed(1)}%`),
            },
            { key: 'wrong', label: 'wrong rows', format: (_, r) => String(r.mismatches) },
            { key: 'errors', label: 'errors' },
          ],
          rows: results,
        },
      ],
      chart: {
        title: 'Point lookups by primary key (queries/s, higher is better)',
        unit: 'queries/s',
        series: variantKeys.map((k) => ({ key: k, label: LABELS[k], color: COLORS[k] })),
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
