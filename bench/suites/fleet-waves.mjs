// Fleet rollout: N tenants (10,000; quick 200) × one additive migration (002: ADD COLUMN), each
// variant in a fresh database holding the same fleet at version 1 (schemas, tables, history and
// registry rows written in bulk, untimed):
//   S  migrateAll({ concurrency: 1 })                              sequential
//   P  migrateAll()                                                default parallelism, one wave
//   W  migrateAll({ canary: 10 tenants, waveSize: N / 10 })        canary + waves, same parallelism
// Waves record every tenant's outcome in the registry (one statement per wave); the figure to read
// is W against P (the cost of waves) and both against S, in the same run.
// Correctness: every tenant's history holds 2 rows, the registry says version 2 without error,
// and with waves the rollout is `finished` with N outcomes recorded.
import 'reflect-metadata';
import { createHash } from 'node:crypto';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DatabaseModule, TenantService } from '../../dist/index.js';
import { withClient } from '../lib/postgres.mjs';
import { round } from '../lib/stats.mjs';
import { fmtFixed, fmtInt } from '../lib/table.mjs';
import { writeMigrations } from '../lib/temp-migrations.mjs';

const POOL_MAX = 10;
const REGISTRY = 'bench_waves';
// BENCH_WAVES_TENANTS sets a full run's fleet size (for a machine that cannot do 10,000 in time).
const FULL = { tenants: Number(process.env.BENCH_WAVES_TENANTS ?? 10_000) };
const QUICK = { tenants: 200 };
const FILE_1 = 'CREATE TABLE {{tables.accounts}} (id bigserial PRIMARY KEY, name text NOT NULL);\n';
const FILE_2 = 'ALTER TABLE {{tables.accounts}} ADD COLUMN note text;\n';
const sha = (text) => createHash('sha256').update(text).digest('hex');

const VARIANTS = [
  { key: 'S', label: 'sequential (concurrency 1)', options: () => ({ concurrency: 1 }) },
  { key: 'P', label: 'default parallelism (4), one wave', options: () => ({}) },
  {
    key: 'W',
    label: 'canary 10 + 10 waves, parallelism 4',
    options: (ids) => ({ canary: ids.slice(0, 10), waveSize: Math.ceil(ids.length / 10) }),
  },
];

const tenantId = (i) => `w${String(i).padStart(5, '0')}`;

async function bootApp(url, migrationsDir) {
  class AppModule {}
  Module({
    imports: [
      DatabaseModule.forRoot({
        connection: url,
        pool: { max: POOL_MAX, applicationName: 'bench_waves' },
        migrateOnStartup: false,
        tenancy: { registrySchema: REGISTRY, migrations: migrationsDir, interceptor: false, maxStalenessMs: 600_000 },
      }),
    ],
  })(AppModule);
  return NestFactory.createApplicationContext(AppModule, { logger: ['error', 'warn'] });
}

/** The fleet at version 1, written in batches (one transaction each keeps the lock table small). */
async function seed(url, ids) {
  const checksum = sha(FILE_1);
  await withClient(url, async (client) => {
    for (let i = 0; i < ids.length; i += 250) {
      await client.query(
        `DO $$ DECLARE id text; BEGIN
           FOREACH id IN ARRAY $ids$${'{' + ids.slice(i, i + 250).join(',') + '}'}$ids$::text[] LOOP
             EXECUTE format('CREATE SCHEMA %I', 'tenant_' || id);
             EXECUTE format('CREATE TABLE %I.accounts (id bigserial PRIMARY KEY, name text NOT NULL)', 'tenant_' || id);
             EXECUTE format('CREATE TABLE %I.schema_migrations (version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), duration_ms integer NOT NULL)', 'tenant_' || id);
             EXECUTE format('INSERT INTO %I.schema_migrations VALUES (1, %L, %L, now(), 0)', 'tenant_' || id, '001_accounts.sql', '${checksum}');
           END LOOP; END $$`,
      );
    }
    await client.query(
      `INSERT INTO ${REGISTRY}.tenants (id, schema_name, status, migrated_version, migrations_digest)
       SELECT id, 'tenant_' || id, 'active', 1, $2 FROM unnest($1::text[]) AS id`,
      [ids, sha(checksum)],
    );
  });
}

async function verify(url, n) {
  return withClient(url, async (client) => {
    const { rows } = await client.query(
      `SELECT count(*) FILTER (WHERE migrated_version = 2 AND last_error IS NULL)::int AS migrated FROM ${REGISTRY}.tenants`,
    );
    const { rows: cols } = await client.query(
      // The registered tenants' schemas only (not the template schema create() copies).
      `SELECT count(*)::int AS n FROM information_schema.columns c JOIN ${REGISTRY}.tenants t ON t.schema_name = c.table_schema
        WHERE c.column_name = 'note' AND c.table_name = 'accounts'`,
    );
    const outcomes = await client.query(`SELECT to_regclass('${REGISTRY}.tenant_rollout_outcomes') IS NOT NULL AS present`);
    const recorded = outcomes.rows[0].present
      ? (await client.query(`SELECT count(*)::int AS n FROM ${REGISTRY}.tenant_rollout_outcomes WHERE outcome = 'applied'`)).rows[0].n
      : 0;
    return { migrated: rows[0].migrated, columns: cols[0].n, recorded, expected: n };
  });
}

export default {
  name: 'fleet-waves',
  description: '10,000 tenants × one additive migration: sequential, parallel, and canary + waves',

  async run(ctx) {
    const config = ctx.quick ? QUICK : FULL;
    const notes = [];
    if (ctx.quick) notes.push(`quick mode: ${config.tenants} tenants (full: ${FULL.tenants})`);
    else if (config.tenants !== 10_000) notes.push(`BENCH_WAVES_TENANTS=${config.tenants} (default 10,000)`);
    const migrations = await writeMigrations('bench-waves', { '001_accounts.sql': FILE_1, '002_note.sql': FILE_2 });
    ctx.defer(() => migrations.remove());
    const ids = Array.from({ length: config.tenants }, (_, i) => tenantId(i));
    const failures = [];
    const results = [];
    for (const variant of VARIANTS) {
      const database = await ctx.createDatabase(`bench_waves_${variant.key.toLowerCase()}`);
      const app = await bootApp(database.url, migrations.dir);
      try {
        await seed(database.url, ids);
        const tenants = app.get(TenantService);
        const t0 = performance.now();
        const summary = await tenants.migrateAll(variant.options(ids));
        const seconds = (performance.now() - t0) / 1000;
        const check = await verify(database.url, ids.length);
        const result = {
          variant: variant.key,
          label: variant.label,
          tenants: ids.length,
          waves: summary.waves.length,
          seconds: round(seconds, 2),
          tenantsPerSecond: round(ids.length / seconds),
          failed: summary.failed.length,
          ...check,
        };
        results.push(result);
        ctx.log(`  ${variant.key} ${variant.label}: ${ids.length} tenants in ${seconds.toFixed(1)} s = ${fmtInt(result.tenantsPerSecond)} tenants/s, ${summary.waves.length} wave(s)`);
        if (summary.failed.length || summary.stopped) failures.push(`${variant.key}: ${summary.failed.length} failed, stopped: ${JSON.stringify(summary.stopped)}`);
        if (check.migrated !== ids.length || check.columns !== ids.length) failures.push(`${variant.key}: ${check.migrated} of ${ids.length} tenants at version 2 (${check.columns} with the new column)`);
        if (check.recorded !== ids.length) failures.push(`${variant.key}: ${check.recorded} of ${ids.length} outcomes recorded`);
      } finally {
        await app.close();
      }
      await database.drop();
    }
    const s = results.find((r) => r.variant === 'S');
    for (const r of results) r.vsSequential = round(s.seconds / r.seconds, 2);
    const p = results.find((r) => r.variant === 'P');
    const w = results.find((r) => r.variant === 'W');
    notes.push(`fleet-waves: canary + waves ${w.vsSequential.toFixed(2)}× the sequential rate; ${round(w.seconds / p.seconds, 2).toFixed(2)}× the time of one parallel wave`);
    return {
      failures,
      notes,
      data: { config: { ...config, poolMax: POOL_MAX }, results },
      tables: [
        {
          title: `Fleet rollout: ${fmtInt(ids.length)} tenants × 1 additive migration, pool of ${POOL_MAX}, a fresh database per variant, one run each`,
          columns: [
            { key: 'label', label: 'how', align: 'left' },
            { key: 'waves', label: 'waves' },
            { key: 'seconds', label: 'total s', format: fmtFixed(1) },
            { key: 'tenantsPerSecond', label: 'tenants/s', format: fmtInt },
            { key: 'vsSequential', label: 'vs seq.', format: (v) => `${v.toFixed(2)}×` },
            { key: 'migrated', label: 'tenants at v2', format: fmtInt },
            { key: 'failed', label: 'failed' },
          ],
          rows: results,
        },
      ],
    };
  },
};
