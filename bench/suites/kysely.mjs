// Typed point lookups: Kysely through the module (kyselyFor(SchemaDb), which qualifies through
// SQL templates and runs on the module's query path) against Kysely's own PostgresDialect on a
// raw pg.Pool with withSchema(tenant), the way a Kysely user qualifies by hand. Same query, same
// pool size, same workers; every row is checked to be the asked tenant's.
import { Kysely, PostgresDialect } from 'kysely';
import { SchemaDb } from '../../dist/index.js';
import { kyselyFor } from '../../dist/kysely/index.js';
import { runClosedLoop } from '../lib/load.mjs';
import { createPool } from '../lib/postgres.mjs';
import { max, median, min, percentile, round } from '../lib/stats.mjs';
import { fmtFixed, fmtInt } from '../lib/table.mjs';
import { createTenants, tenantName } from '../lib/tenant-schemas.mjs';

const ROWS_PER_TENANT = 100; // rows createTenants() puts in each tenant's items
const CONCURRENCY = 32;
const BUDGET = 10;
const FULL = { tenants: 100, rounds: 5, roundMs: 5000, warmupMs: 2000 };
const QUICK = { tenants: 20, rounds: 2, roundMs: 800, warmupMs: 300 };

const lookup = (db, id) =>
  db
    .selectFrom('items')
    .select(['id', 'tenant', 'payload'])
    .where('id', '=', id)
    .executeTakeFirst();

const VARIANTS = [
  {
    key: 'kysely',
    label: "(k) Kysely's PostgresDialect on pg.Pool, withSchema(tenant)",
    open(pool, tenants) {
      const base = new Kysely({ dialect: new PostgresDialect({ pool }) });
      const dbs = new Map(tenants.map((t) => [t, base.withSchema(t)]));
      return (tenant, id) => lookup(dbs.get(tenant), id);
    },
  },
  {
    key: 'module',
    label: '(m) kyselyFor(SchemaDb) through the module',
    open(pool, tenants) {
      const dbs = new Map(tenants.map((t) => [t, kyselyFor(SchemaDb.create(pool, t))]));
      return (tenant, id) => lookup(dbs.get(tenant), id);
    },
  },
  {
    key: 'template',
    label: '(s) SchemaDb.fetchOne, {{tables.items}}, no Kysely (reference)',
    open(pool, tenants) {
      const dbs = new Map(tenants.map((t) => [t, SchemaDb.create(pool, t)]));
      const text = 'SELECT id, tenant, payload FROM {{tables.items}} WHERE id = $1';
      return (tenant, id) => dbs.get(tenant).fetchOne(text, [id]);
    },
  },
];

export default {
  name: 'kysely',
  description:
    "Typed point lookups: Kysely through the module vs Kysely's own PostgresDialect on raw pg",

  async run(ctx) {
    const config = ctx.quick ? QUICK : FULL;
    const { url } = await ctx.createDatabase('bench_kysely');
    await createTenants(url, 0, config.tenants, ROWS_PER_TENANT);
    const tenants = Array.from({ length: config.tenants }, (_, i) => tenantName(i));
    ctx.log(`${config.tenants} tenants ready`);

    const entries = VARIANTS.map((variant) => {
      const pool = createPool({
        connectionString: url,
        max: BUDGET,
        idleTimeoutMillis: 0,
        application_name: `bench_${variant.key}`,
      });
      ctx.defer(() => pool.end());
      const find = variant.open(pool, tenants);
      const operation = async (random) => {
        const tenant = tenants[random.int(tenants.length)];
        const id = 1 + random.int(ROWS_PER_TENANT);
        const row = await find(tenant, id);
        return row != null && row.tenant === tenant && row.id === id;
      };
      return { variant, operation, rounds: [], mismatches: 0, errors: 0, firstError: undefined };
    });
    const run = async (entry, durationMs, seed, record) => {
      const res = await runClosedLoop({
        concurrency: CONCURRENCY,
        durationMs,
        seed,
        operation: entry.operation,
        record,
      });
      entry.mismatches += res.mismatches;
      entry.errors += res.errors;
      entry.firstError ??= res.firstError;
      return res;
    };

    for (const entry of entries) await run(entry, config.warmupMs, 1e6, false);
    for (let r = 0; r < config.rounds; r++) {
      // Rotate the order each round so no variant always runs first.
      for (let i = 0; i < entries.length; i++) {
        const entry = entries[(i + r) % entries.length];
        const res = await run(entry, config.roundMs, 3e6 + r * 1000, true);
        const sorted = res.latencies.sorted();
        entry.rounds.push({
          qps: round(res.operations / (res.elapsedMs / 1000)),
          p50Ms: round(percentile(sorted, 50), 3),
          p99Ms: round(percentile(sorted, 99), 3),
          clientCpuUsPerQuery: round((res.cpu.user + res.cpu.system) / res.operations, 2),
        });
        const last = entry.rounds.at(-1);
        ctx.log(
          `  round ${r + 1}/${config.rounds} ${entry.variant.key.padEnd(8)} ${fmtInt(last.qps).padStart(7)} q/s  p50 ${last.p50Ms.toFixed(2)} ms  client CPU ${last.clientCpuUsPerQuery.toFixed(1)} µs/q`,
        );
      }
    }

    const baseline = entries[0].rounds.map((x) => x.qps);
    const failures = [];
    const results = entries.map((entry) => {
      const qps = entry.rounds.map((x) => x.qps);
      const label = entry.variant.label;
      if (entry.mismatches > 0)
        failures.push(`${label}: ${entry.mismatches} wrong or missing rows`);
      if (entry.errors > 0)
        failures.push(`${label}: ${entry.errors} failed queries (first: ${entry.firstError})`);
      return {
        variant: entry.variant.key,
        label,
        qps: round(median(qps)),
        qpsMin: round(min(qps)),
        qpsMax: round(max(qps)),
        // Per round against the baseline's same round, then the median: drifts in machine load
        // between rounds cancel out.
        ratio: round(median(qps.map((q, i) => q / baseline[i])), 3),
        p50Ms: round(median(entry.rounds.map((x) => x.p50Ms)), 3),
        p99Ms: round(median(entry.rounds.map((x) => x.p99Ms)), 3),
        clientCpuUsPerQuery: round(median(entry.rounds.map((x) => x.clientCpuUsPerQuery)), 2),
        mismatches: entry.mismatches,
        errors: entry.errors,
        rounds: entry.rounds,
      };
    });

    return {
      failures,
      notes: ctx.quick
        ? [
            `quick mode: ${QUICK.tenants} tenants, ${QUICK.rounds} rounds of ${QUICK.roundMs / 1000} s (full: ${FULL.tenants} tenants, ${FULL.rounds} rounds of ${FULL.roundMs / 1000} s)`,
          ]
        : [],
      data: { config: { ...config, concurrency: CONCURRENCY, connectionBudget: BUDGET }, results },
      tables: [
        {
          title: `Typed point lookups over ${config.tenants} tenants: ${CONCURRENCY} workers, ${BUDGET} connections, median of ${config.rounds} rounds × ${config.roundMs / 1000} s`,
          columns: [
            { key: 'label', label: 'variant', align: 'left' },
            { key: 'ratio', label: 'vs (k)', format: fmtFixed(2) },
            { key: 'qps', label: 'queries/s', format: fmtInt },
            {
              key: 'range',
              label: 'q/s range (rounds)',
              format: (_, r) => `${fmtInt(r.qpsMin)}–${fmtInt(r.qpsMax)}`,
            },
            { key: 'p50Ms', label: 'p50 ms', format: fmtFixed(2) },
            { key: 'clientCpuUsPerQuery', label: 'client CPU µs/q', format: fmtFixed(1) },
          ],
          rows: results,
        },
      ],
    };
  },
};
