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

export const tenantName = (i) => `tenant_${String(i).padStart(4, '0')}`;

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
    searchPath('c', false),
    searchPath('c2', true),
    perTenantPools('d', BUDGET),
  ];
  if (wideBudget !== undefined) variants.push(perTenantPools('d2', wideBudget));
  return variants;
}

const LABELS = {
  a: '(a) pg.Pool.query, hand-qualified SQL',
  b: '(b) SchemaDb.fetchOne, {{tables.items}}',
  b2: '(b2) as (b), withSchema(tenant) per query',
  c: '(c) connect + SET search_path + query',
  c2: '(c2) as (c) + RESET search_path',
  d: `(d) pool per tenant, ${BUDGET} conns total (LRU)`,
  d2: `(d2) pool per tenant, up to ${WIDE_BUDGET} conns (over budget)`,
};
// Related variants share a hue: the module's path orange, search_path green, pools per tenant red.
const COLORS = {
  a: '#4e79a7',
  b: '#f28e2b',
  b2: '#ffbe7d',
  c: '#59a14f',
  c2: '#8cd17d',
  d: '#e15759',
  d2: '#ff9d9a',
};
const SHORT = {
  a: '(a) pool.query',
  b: '(b) SchemaDb',
  b2: '(b2) withSchema',
  c: '(c) search_path',
  c2: '(c2) +RESET',
  d: '(d) pool/tenant',
  d2: '(d2) pool/tenant wide',
};

/** Creates tenant schemas `from`..`to - 1`, each with `items` holding ROWS_PER_TENANT rows. */
export async function createTenants(url, from, to) {
  const pool = createPool({ connectionString: url, max: 2, application_name: 'bench_setup' });
  try {
    const batches = [];
    for (let i = from; i < to; i += 50) {
      const stmts = [];
      for (let j = i; j < Math.min(to, i + 50); j++) {
        const s = quoteIdentifier(tenantName(j));
        stmts.push(
          `CREATE SCHEMA ${s};`,
          `CREATE TABLE ${s}.items (id int PRIMARY KEY, tenant text NOT NULL, payload text NOT NULL);`,
          `INSERT INTO ${s}.items SELECT g, '${tenantName(j)}', repeat(md5(g::text), 3) FROM generate_series(1, ${ROWS_PER_TENANT}) g;`,
        );
      }
      batches.push(stmts.join('\n'));
    }
    let next = 0;
    const worker = async () => {
      while (next < batches.length) await pool.query(batches[next++]);
    };
    await Promise.all([worker(), worker()]);
    await pool.query('VACUUM (ANALYZE)');
  } finally {
    await pool.end();
  }
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
      await createTenants(url, created, tenantCount);
      created = tenantCount;
      const setupSeconds = (performance.now() - t0) / 1000;
      ctx.log(`${tenantCount} tenants ready (${setupSeconds.toFixed(1)} s to create)`);
      const tenants = Array.from({ length: tenantCount }, (_, i) => tenantName(i));

      const operationFor = (instance) => async (random) => {
        const tenant = tenants[random.int(tenants.length)];
        const id = 1 + random.int(ROWS_PER_TENANT);
        const row = await instance.lookup(tenant, id);
        return row != null && row.tenant === tenant && row.id === id;
      };

      const open = [];
      try {
        const entries = variants.map((v) => {
          const instance = v.open(tenants);
          open.push(instance);
          return {
            variant: v,
            instance,
            operation: operationFor(instance),
            rounds: [],
            mismatches: 0,
            errors: 0,
            firstError: undefined,
          };
        });
        const tally = (entry, r) => {
          entry.mismatches += r.mismatches;
          entry.errors += r.errors;
          entry.firstError ??= r.firstError;
        };

        for (const entry of entries) {
          ctx.log(`  warm-up ${SHORT[entry.variant.key]}`);
          tally(
            entry,
            await runClosedLoop({
              concurrency: CONCURRENCY,
              durationMs: config.warmupMs,
              seed: 1e6,
              operation: entry.operation,
              record: false,
            }),
          );
        }
        for (let r = 0; r < config.rounds; r++) {
          // Rotate the order each round so no variant always runs first or last.
          const order = entries.map((_, i) => entries[(i + r) % entries.length]);
          for (const entry of order) {
            tally(
              entry,
              await runClosedLoop({
                concurrency: CONCURRENCY,
                durationMs: config.preRoundMs,
                seed: 2e6 + r * 1000,
                operation: entry.operation,
                record: false,
              }),
            );
            const before = entry.instance.stats?.();
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
