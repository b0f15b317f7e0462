// Many schemas per connection: a pooled connection that has served every tenant keeps every
// tenant's relations in its backend's caches (PostgreSQL never evicts relcache entries). This
// suite touches every schema on every pooled connection and reads the server memory of each
// connection, then measures what connection recycling (pg-pool's maxUses, exposed as
// pool.maxUses) costs in throughput and what it gives back in memory.
import { quoteIdentifier, SchemaDb } from '../../dist/index.js';
import { canReadMemory, memoryPerConnection } from '../lib/backend-memory.mjs';
import { runClosedLoop } from '../lib/load.mjs';
import { createPool, withClient } from '../lib/postgres.mjs';
import { median, round } from '../lib/stats.mjs';
import { fmtFixed, fmtInt } from '../lib/table.mjs';
import { createTenants, tenantName } from '../lib/tenant-schemas.mjs';

const ROWS_PER_TENANT = 10;
const CONCURRENCY = 32;
const BUDGET = 10;

const FULL = { schemaCounts: [1000, 10000], maxUses: [0, 20000, 5000], rounds: 3, roundMs: 5000 };
const QUICK = { schemaCounts: [200, 1000], maxUses: [0, 2000, 500], rounds: 2, roundMs: 1000 };

const lookupSql = (schema) =>
  `SELECT id, tenant FROM ${quoteIdentifier(schema)}."items" WHERE id = $1`;

/** Every held connection runs one lookup in every schema, in order. */
async function touchAll(pool, tenants) {
  const clients = [];
  try {
    for (let i = 0; i < BUDGET; i++) clients.push(await pool.connect());
    await Promise.all(
      clients.map(async (client) => {
        for (const t of tenants) await client.query(lookupSql(t), [1]);
      }),
    );
  } finally {
    for (const c of clients) c.release();
  }
}

export default {
  name: 'connection-memory',
  description:
    'Server memory per pooled connection after touching N tenant schemas, and the cost of recycling connections (pool.maxUses)',

  async run(ctx) {
    const config = ctx.quick ? QUICK : FULL;
    const database = await ctx.createDatabase('bench_connmem');
    const url = database.url;
    const notes = [];
    if (ctx.quick)
      notes.push(
        `quick mode: ${config.schemaCounts.join(' and ')} schemas, maxUses ${config.maxUses.join('/')} (full: 1000 and 10000 schemas, maxUses 0/20000/5000)`,
      );
    const probe = createPool({ connectionString: url, max: 1 });
    const readable = await canReadMemory(probe).finally(() => probe.end());
    if (!readable) {
      return { failures: [], skipped: 'pg_backend_memory_contexts needs PostgreSQL 14+' };
    }
    const memoryRows = [];
    const recyclingRows = [];
    const failures = [];
    let created = 0;
    let tenants = [];

    for (const count of config.schemaCounts) {
      const t0 = performance.now();
      await createTenants(url, created, count, ROWS_PER_TENANT);
      created = count;
      tenants = Array.from({ length: count }, (_, i) => tenantName(i));
      ctx.log(`${count} schemas ready (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
      const pool = createPool({
        connectionString: url,
        max: BUDGET,
        idleTimeoutMillis: 0,
        application_name: 'bench_connmem',
      });
      try {
        const fresh = await memoryPerConnection(pool, BUDGET);
        const t1 = performance.now();
        await touchAll(pool, tenants);
        const touchSeconds = (performance.now() - t1) / 1000;
        const touched = await memoryPerConnection(pool, BUDGET);
        memoryRows.push({
          schemas: count,
          freshMiB: fresh.totalMiB,
          totalMiB: touched.totalMiB,
          relcacheMiB: touched.relcacheMiB,
          kibPerSchema: round(((touched.totalMiB - fresh.totalMiB) * 1024) / count, 1),
          poolMiB: round(touched.totalMiB * BUDGET, 0),
          touchSeconds: round(touchSeconds, 1),
        });
        ctx.log(
          `  ${count} schemas: ${fresh.totalMiB} MiB → ${touched.totalMiB} MiB per connection (relcache ${touched.relcacheMiB} MiB)`,
        );
      } finally {
        await pool.end();
      }
    }

    // What one replacement costs the pool: a new connection (TCP, startup, authentication).
    const connectTimes = [];
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      await withClient(url, () => undefined);
      connectTimes.push(performance.now() - t);
    }
    const connectMs = round(median(connectTimes), 2);
    ctx.log(`  one reconnect: ${connectMs} ms (median of 20)`);

    // Recycling at the largest count: the module's default statements, random tenants.
    const n = tenants.length;
    for (const maxUses of config.maxUses) {
      let connects = 0;
      const pool = createPool({
        connectionString: url,
        max: BUDGET,
        idleTimeoutMillis: 0,
        application_name: `bench_connmem_${maxUses}`,
        ...(maxUses > 0 ? { maxUses } : {}),
      });
      pool.on('connect', () => connects++);
      const root = SchemaDb.create(pool, null, { preparedStatements: true });
      const operation = async (random) => {
        const tenant = tenants[random.int(n)];
        const row = await root
          .withSchema(tenant)
          .fetchOne('SELECT id, tenant FROM {{tables.items}} WHERE id = $1', [
            1 + random.int(ROWS_PER_TENANT),
          ]);
        return row?.tenant === tenant;
      };
      try {
        // Opens the pool's connections first, so the rounds count replacements only.
        const warmUp = await runClosedLoop({
          concurrency: CONCURRENCY,
          durationMs: config.roundMs / 2,
          seed: 4e6,
          operation,
          record: false,
        });
        const rounds = [];
        let errors = warmUp.errors;
        let mismatches = warmUp.mismatches;
        for (let r = 0; r < config.rounds; r++) {
          const before = connects;
          const res = await runClosedLoop({
            concurrency: CONCURRENCY,
            durationMs: config.roundMs,
            seed: 5e6 + r,
            operation,
            record: false,
          });
          errors += res.errors;
          mismatches += res.mismatches;
          rounds.push({
            qps: round(res.operations / (res.elapsedMs / 1000)),
            reconnectsPerSecond: round((connects - before) / (res.elapsedMs / 1000), 2),
          });
        }
        const memory = await memoryPerConnection(pool, BUDGET);
        recyclingRows.push({
          schemas: n,
          maxUses: maxUses === 0 ? 'off' : maxUses,
          // Amortised: one reconnect per maxUses checkouts (re-preparing statements not included).
          reconnectUsPerQuery: maxUses === 0 ? 0 : round((connectMs * 1000) / maxUses, 2),
          qps: round(median(rounds.map((x) => x.qps))),
          reconnectsPerSecond: median(rounds.map((x) => x.reconnectsPerSecond)),
          hitRate: round(root.statementStats.hitRate, 4),
          totalMiB: memory.totalMiB,
          relcacheMiB: memory.relcacheMiB,
          plansMiB: memory.plansMiB,
          errors,
          mismatches,
          rounds,
        });
        ctx.log(
          `  maxUses ${maxUses || 'off'}: ${fmtInt(recyclingRows.at(-1).qps)} q/s, ${memory.totalMiB} MiB per connection`,
        );
        if (errors || mismatches)
          failures.push(`maxUses ${maxUses}: ${errors} errors, ${mismatches} wrong rows`);
      } finally {
        await pool.end();
      }
    }
    const base = recyclingRows[0]?.qps;
    for (const row of recyclingRows) row.ratio = round(row.qps / base, 3);

    return {
      failures,
      notes,
      data: {
        config: { ...config, rowsPerTenant: ROWS_PER_TENANT, connections: BUDGET },
        connectMs,
        memory: memoryRows,
        recycling: recyclingRows,
      },
      tables: [
        {
          title: `Server memory per pooled connection after each of ${BUDGET} connections ran one lookup in every schema (statements off)`,
          columns: [
            { key: 'schemas', label: 'schemas', format: fmtInt },
            { key: 'freshMiB', label: 'fresh MiB/conn', format: fmtFixed(1) },
            { key: 'totalMiB', label: 'after MiB/conn', format: fmtFixed(1) },
            { key: 'relcacheMiB', label: 'of which relcache', format: fmtFixed(1) },
            { key: 'kibPerSchema', label: 'KiB per schema', format: fmtFixed(1) },
            { key: 'poolMiB', label: `MiB for ${BUDGET} conns`, format: fmtInt },
          ],
          rows: memoryRows,
        },
        {
          title: `Recycling at ${n} schemas (one reconnect ${connectMs} ms): random lookups, managed statements on, ${CONCURRENCY} workers, ${BUDGET} connections, median of ${config.rounds} rounds × ${config.roundMs / 1000} s`,
          columns: [
            { key: 'maxUses', label: 'pool.maxUses' },
            { key: 'qps', label: 'queries/s', format: fmtInt },
            { key: 'ratio', label: 'vs off', format: fmtFixed(2) },
            { key: 'reconnectsPerSecond', label: 'reconnects/s', format: fmtFixed(1) },
            { key: 'reconnectUsPerQuery', label: 'reconnect µs/query', format: fmtFixed(2) },
            { key: 'hitRate', label: 'stmt hit rate', format: (v) => `${(v * 100).toFixed(1)}%` },
            { key: 'totalMiB', label: 'MiB/conn at end', format: fmtFixed(1) },
            { key: 'errors', label: 'errors' },
          ],
          rows: recyclingRows,
        },
      ],
      chart: {
        title: `Connection recycling at ${n} schemas (queries/s, higher is better)`,
        unit: 'queries/s',
        series: recyclingRows.map((r, i) => ({
          key: String(r.maxUses),
          label: `maxUses ${r.maxUses}`,
          color: ['#4e79a7', '#f28e2b', '#e15759'][i % 3],
        })),
        groups: [
          {
            label: `${n} schemas`,
            values: Object.fromEntries(recyclingRows.map((r) => [String(r.maxUses), r.qps])),
          },
        ],
      },
    };
  },
};
