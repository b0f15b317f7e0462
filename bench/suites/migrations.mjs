// Migrations at scale: N tenants (1,000; quick 50) × 5 tenant migration files, sequential
// (migrationConcurrency: 1) vs the default parallelism (4), each in a fresh database:
//   (i)  TenantService.create(id) for every tenant, at most `concurrency` calls in flight;
//   (ii) registry rows inserted directly (INSERT … unnest, as if created before the files
//        existed; their empty schemas are created first, untimed), then one migrateAll();
// then a no-op migrateAll() over all N tenants (nothing pending): its time and the number of
// connections it took from the pool ('acquire' events, as the lifecycle test counts them).
// Correctness: every tenant schema holds 5 history rows, the registry says version 5 without
// error for each, and no summary lists a failure.
import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DatabaseModule, getPoolToken, TenantService } from '../../dist/index.js';
import { withClient } from '../lib/postgres.mjs';
import { max, median, min, round } from '../lib/stats.mjs';
import { fmtFixed, fmtInt } from '../lib/table.mjs';
import { mapLimit, writeMigrations } from '../lib/temp-migrations.mjs';

const POOL_MAX = 10;
const REGISTRY_SCHEMA = 'bench_mig';
const FULL = { tenants: 1000, rounds: 3, noopRounds: 5 };
const QUICK = { tenants: 50, rounds: 2, noopRounds: 3 };

const FILES = {
  '001_accounts.sql': `CREATE TABLE {{tables.accounts}} (
  id bigserial PRIMARY KEY,
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
`,
  '002_events.sql': `CREATE TABLE {{tables.events}} (
  id bigserial PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES {{tables.accounts}} (id),
  kind text NOT NULL,
  at timestamptz NOT NULL DEFAULT now()
);
`,
  '003_events_index.sql': 'CREATE INDEX events_account_at ON {{tables.events}} (account_id, at);\n',
  '004_accounts_plan.sql':
    "ALTER TABLE {{tables.accounts}} ADD COLUMN plan text NOT NULL DEFAULT 'free';\n",
  '005_seed.sql': "INSERT INTO {{tables.accounts}} (name) VALUES ('owner');\n",
};
const FILE_COUNT = Object.keys(FILES).length;

const VARIANTS = [
  { key: 'S', concurrency: 1, label: 'sequential (migrationConcurrency: 1)', color: '#76b7b2' },
  {
    key: 'P',
    concurrency: undefined,
    label: 'default parallelism (migrationConcurrency: 4)',
    color: '#f28e2b',
  },
];
const DEFAULT_CONCURRENCY = 4;

const METHODS = {
  create: { label: 'TenantService.create() × N', short: 'create()' },
  migrateAll: { label: 'registry rows + migrateAll()', short: 'migrateAll()' },
};

const tenantId = (i) => `m${String(i).padStart(5, '0')}`;

async function bootApp(url, migrationsDir, concurrency) {
  class AppModule {}
  Module({
    imports: [
      DatabaseModule.forRoot({
        connection: url,
        pool: { max: POOL_MAX, applicationName: 'bench_migrations' },
        migrateOnStartup: false,
        tenancy: {
          registrySchema: REGISTRY_SCHEMA,
          migrations: migrationsDir,
          interceptor: false,
          // Heartbeats go through the pool; keep them out of the no-op run's connection count.
          maxStalenessMs: 600_000,
          ...(concurrency === undefined ? {} : { migrationConcurrency: concurrency }),
        },
      }),
    ],
  })(AppModule);
  const app = await NestFactory.createApplicationContext(AppModule, { logger: ['error', 'warn'] });
  return app;
}

/** Per tenant schema: its number of history rows; and the registry's view. One query each. */
async function verify(url, ids) {
  return withClient(url, async (client) => {
    const { rows: history } = await client.query(
      `SELECT n.nspname AS schema,
              (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.schema_migrations', n.nspname), false, true, '')))[1]::text::int AS applied
         FROM pg_namespace n
        WHERE n.nspname = ANY($1)`,
      [ids.map((id) => `tenant_${id}`)],
    );
    const { rows: registry } = await client.query(
      `SELECT count(*)::int AS total,
              count(*) FILTER (WHERE status = 'active' AND migrated_version = $1 AND last_error IS NULL)::int AS migrated
         FROM ${REGISTRY_SCHEMA}.tenants`,
      [FILE_COUNT],
    );
    return {
      schemas: history.length,
      complete: history.filter((r) => r.applied === FILE_COUNT).length,
      registryTotal: registry[0].total,
      registryMigrated: registry[0].migrated,
    };
  });
}

export default {
  name: 'migrations',
  description:
    'Create and migrate 1,000 tenants × 5 files: create() and migrateAll(), sequential vs default parallelism; no-op migrateAll()',

  async run(ctx) {
    const config = ctx.quick ? QUICK : FULL;
    const notes = [];
    if (ctx.quick) notes.push(`quick mode: ${config.tenants} tenants (full: ${FULL.tenants})`);
    const migrations = await writeMigrations('bench-tenant-migrations', FILES);
    ctx.defer(() => migrations.remove());
    const ids = Array.from({ length: config.tenants }, (_, i) => tenantId(i));
    const failures = [];
    const runs = [];

    for (let round_ = 0; round_ < config.rounds; round_++) {
      // Alternate which variant goes first from one round to the next.
      const order = round_ % 2 === 0 ? VARIANTS : [...VARIANTS].reverse();
      for (const method of Object.keys(METHODS)) {
        for (const variant of order) {
          const database = await ctx.createDatabase(
            `bench_mig_${method.toLowerCase()}_${variant.key.toLowerCase()}`,
          );
          const app = await bootApp(database.url, migrations.dir, variant.concurrency);
          try {
            const tenants = app.get(TenantService);
            const pool = app.get(getPoolToken());
            const concurrency = variant.concurrency ?? DEFAULT_CONCURRENCY;
            // Tenants registered before the files existed already have their (empty) schemas:
            // migrations never create a tenant's schema.
            if (method !== 'create')
              await pool.query(ids.map((id) => `CREATE SCHEMA "tenant_${id}";`).join('\n'));
            const t0 = performance.now();
            let failed = [];
            if (method === 'create') {
              await mapLimit(ids, concurrency, async (id) => {
                try {
                  await tenants.create(id);
                } catch (err) {
                  failed.push({ tenantId: id, error: String(err?.message ?? err) });
                }
              });
            } else {
              await pool.query(
                `INSERT INTO ${REGISTRY_SCHEMA}.tenants (id, schema_name, status) SELECT id, 'tenant_' || id, 'active' FROM unnest($1::text[]) AS id`,
                [ids],
              );
              const summary = await tenants.migrateAll();
              failed = summary.failed;
              if (summary.applied.length !== ids.length)
                failures.push(
                  `${variant.key} migrateAll: ${summary.applied.length} of ${ids.length} tenants applied`,
                );
            }
            const seconds = (performance.now() - t0) / 1000;

            // The no-op run: nothing pending for any tenant. First let the registry's change
            // listener finish refreshing after the last create() (it queries through the pool).
            await new Promise((resolve) => setTimeout(resolve, 300));
            const noop = [];
            for (let k = 0; k < config.noopRounds; k++) {
              let acquired = 0;
              const onAcquire = () => acquired++;
              pool.on('acquire', onAcquire);
              const n0 = performance.now();
              const summary = await tenants.migrateAll();
              const ms = performance.now() - n0;
              pool.off('acquire', onAcquire);
              noop.push({
                ms,
                acquired,
                skipped: summary.skipped,
                applied: summary.applied.length,
                failed: summary.failed.length,
              });
            }
            const check = await verify(database.url, ids);
            const run = {
              round: round_ + 1,
              method,
              variant: variant.key,
              concurrency,
              tenants: ids.length,
              seconds: round(seconds, 2),
              tenantsPerSecond: round(ids.length / seconds),
              msPerTenant: round((seconds * 1000) / ids.length, 2),
              failed: failed.length,
              firstFailure: failed[0]?.error,
              noopMs: round(median(noop.map((x) => x.ms)), 2),
              noopMaxMs: round(max(noop.map((x) => x.ms)), 2),
              noopQueries: max(noop.map((x) => x.acquired)),
              noop,
              ...check,
            };
            runs.push(run);
            ctx.log(
              `  ${METHODS[method].short.padEnd(12)} ${variant.key} (concurrency ${concurrency}): ${ids.length} tenants in ${run.seconds.toFixed(1)} s = ${fmtInt(run.tenantsPerSecond)} tenants/s; no-op migrateAll ${run.noopMs.toFixed(1)} ms, ${run.noopQueries} pool acquire(s)`,
            );

            const tag = `${METHODS[method].short} ${variant.key}`;
            if (failed.length)
              failures.push(
                `${tag}: ${failed.length} tenants failed (first: ${failed[0].tenantId}: ${failed[0].error})`,
              );
            if (check.schemas !== ids.length || check.complete !== ids.length)
              failures.push(
                `${tag}: ${check.complete} of ${ids.length} tenant schemas hold ${FILE_COUNT} history rows (${check.schemas} schemas found)`,
              );
            if (check.registryTotal !== ids.length || check.registryMigrated !== ids.length)
              failures.push(
                `${tag}: registry has ${check.registryMigrated} of ${ids.length} tenants at version ${FILE_COUNT} without error (${check.registryTotal} rows)`,
              );
            for (const n of noop) {
              if (n.applied || n.failed || n.skipped !== ids.length)
                failures.push(
                  `${tag}: no-op migrateAll applied ${n.applied}, failed ${n.failed}, skipped ${n.skipped} of ${ids.length}`,
                );
            }
          } finally {
            await app.close();
          }
          await database.drop(); // also at the end of the run (twice is harmless), but free the disk now
        }
      }
    }

    // Medians over rounds, per method and variant.
    const results = [];
    for (const method of Object.keys(METHODS)) {
      for (const variant of VARIANTS) {
        const mine = runs.filter((r) => r.method === method && r.variant === variant.key);
        const secs = mine.map((r) => r.seconds);
        results.push({
          method,
          variant: variant.key,
          label: `${METHODS[method].label}, ${variant.label}`,
          methodLabel: METHODS[method].label,
          variantLabel: variant.label,
          concurrency: mine[0].concurrency,
          tenants: ids.length,
          seconds: round(median(secs), 2),
          secondsMin: round(min(secs), 2),
          secondsMax: round(max(secs), 2),
          tenantsPerSecond: round(ids.length / median(secs)),
          msPerTenant: round((median(secs) * 1000) / ids.length, 2),
          noopMs: round(median(mine.flatMap((r) => r.noop.map((x) => x.ms))), 2),
          noopQueries: max(mine.map((r) => r.noopQueries)),
          failed: mine.reduce((s, r) => s + r.failed, 0),
          complete: min(mine.map((r) => r.complete)),
        });
      }
    }
    for (const method of Object.keys(METHODS)) {
      const [s, p] = results.filter((r) => r.method === method);
      p.speedup = round(s.seconds / p.seconds, 2);
      notes.push(
        `migrations: ${METHODS[method].label}: default parallelism ${p.speedup.toFixed(2)}× the sequential rate (${fmtInt(p.tenantsPerSecond)} vs ${fmtInt(s.tenantsPerSecond)} tenants/s)`,
      );
    }
    const noopAll = runs.flatMap((r) => r.noop);
    notes.push(
      `migrations: no-op migrateAll over ${ids.length} tenants: median ${round(median(noopAll.map((x) => x.ms)), 2)} ms, at most ${max(noopAll.map((x) => x.acquired))} pool acquire(s) per run`,
    );

    return {
      failures,
      notes,
      data: {
        config: {
          ...config,
          files: FILE_COUNT,
          poolMax: POOL_MAX,
          defaultConcurrency: DEFAULT_CONCURRENCY,
        },
        results,
        runs,
      },
      tables: [
        {
          title: `Migrations at scale: ${fmtInt(ids.length)} tenants × ${FILE_COUNT} files, pool of ${POOL_MAX}, a fresh database per run, median of ${config.rounds} round(s)`,
          columns: [
            { key: 'methodLabel', label: 'how', align: 'left' },
            { key: 'variantLabel', label: 'concurrency', align: 'left' },
            { key: 'seconds', label: 'total s', format: fmtFixed(1) },
            { key: 'tenantsPerSecond', label: 'tenants/s', format: fmtInt },
            { key: 'msPerTenant', label: 'ms/tenant', format: fmtFixed(1) },
            {
              key: 'range',
              label: 'total s range',
              format: (_, r) => `${r.secondsMin.toFixed(1)}–${r.secondsMax.toFixed(1)}`,
            },
            {
              key: 'speedup',
              label: 'vs seq.',
              format: (v) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : ''),
            },
            { key: 'noopMs', label: 'no-op migrateAll ms', format: fmtFixed(1) },
            { key: 'noopQueries', label: 'no-op pool acquires' },
            { key: 'complete', label: 'tenants at v5', format: fmtInt },
            { key: 'failed', label: 'failed' },
          ],
          rows: results,
        },
      ],
      chart: {
        title: `Migrating ${fmtInt(ids.length)} tenants × ${FILE_COUNT} files (tenants/s, higher is better)`,
        unit: 'tenants/s',
        series: VARIANTS.map((v) => ({ key: v.key, label: v.label, color: v.color })),
        groups: Object.keys(METHODS).map((method) => ({
          label: METHODS[method].label,
          values: Object.fromEntries(
            results.filter((r) => r.method === method).map((r) => [r.variant, r.tenantsPerSecond]),
          ),
        })),
      },
    };
  },
};
