// The two isolation tiers at scale, each beside its baseline in the same run:
//  1. boot: an app whose registry holds N tenants (99 % pooled, 1 % schema; full 100,000) against
//     the same app with none, each start a fresh child process (the many-tenants fixture);
//  2. point lookups: pooled tenants against schema tenants in one app, alternating rounds;
//  3. catalog and backend memory: N tenants all pooled against N all in schemas, after every
//     pooled connection has served every tenant once.
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DatabaseModule, quoteIdentifier, TenantService } from '../../dist/index.js';
import { TenantRegistry } from '../../dist/tenancy/index.js';
import { canReadMemory, memoryPerConnection } from '../lib/backend-memory.mjs';
import { runClosedLoop } from '../lib/load.mjs';
import { startManyTenantsApp } from '../lib/many-tenants-child.mjs';
import { createPool, withClient } from '../lib/postgres.mjs';
import { median, round } from '../lib/stats.mjs';
import { fmtFixed, fmtInt } from '../lib/table.mjs';
import { mapLimit, writeMigrations } from '../lib/temp-migrations.mjs';

const FULL = {
  boot: { tenants: 100_000, rounds: 3 },
  lookups: { perTier: 200, rounds: 6, roundMs: 3000, warmupMs: 1500 },
  catalog: { counts: [2000, 10000] },
};
const QUICK = {
  boot: { tenants: Number(process.env.BENCH_TIERS_BOOT_TENANTS ?? 10_000), rounds: 2 },
  lookups: { perTier: 40, rounds: 4, roundMs: 800, warmupMs: 400 },
  catalog: { counts: [200] },
};
const SCHEMA_SHARE = 0.01; // of the booted registry: 1,000 of 100,000
/** How long each measured start stays idle once ready, to see what its heartbeats allocate. */
const IDLE_MS = 3_000;
// Measured: about 1 B per tenant per second once fixed (the first heartbeats' JIT compilation
// falls in the window), about 21 with garbage per tenant per heartbeat.
const IDLE_BYTES_PER_TENANT_S_MAX = 8;
const ROWS = 100; // per tenant, in the lookup part
const CONCURRENCY = 32;
const BUDGET = 10;
const MiB = 2 ** 20;

const ITEMS_SQL =
  'CREATE TABLE {{tables.items}} (id int PRIMARY KEY, tenant text NOT NULL, payload text NOT NULL);\n';
const LOOKUP_SQL = 'SELECT id, tenant, payload FROM {{tables.items}} WHERE id = $1';
// The sample app's tenant migrations, for the catalog part: two tables, identities, a foreign key,
// an index (what a small product's schema holds).
const SAMPLE_FILES = {
  '001_projects.sql': `CREATE TABLE {{tables.projects}} (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL,
  description text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {{tables.tasks}} (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id bigint NOT NULL REFERENCES {{tables.projects}} (id) ON DELETE CASCADE,
  title text NOT NULL,
  done boolean NOT NULL DEFAULT false,
  assignee_id integer,
  created_at timestamptz NOT NULL DEFAULT now()
);
`,
  '002_tasks_project_index.sql': 'CREATE INDEX tasks_project ON {{tables.tasks}} (project_id);\n',
};
const expandFor = (schema, sql) =>
  sql.replaceAll(/\{\{tables\.(\w+)\}\}/g, (_, t) => `${quoteIdentifier(schema)}.${t}`);

/**
 * A role of the run's own (roles belong to the whole server): at the end, what `url`'s database
 * granted it is dropped, then the role.
 */
function pooledRole(ctx, url) {
  const role = `bench_pooled_${randomUUID().slice(0, 8)}`;
  const sql = (text) => (client) => client.query(text);
  ctx.defer(() => withClient(ctx.serverUrl, sql(`DROP ROLE IF EXISTS ${quoteIdentifier(role)}`)));
  ctx.defer(async () => {
    await withClient(url, async (client) => {
      const exists = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
      if (exists.rowCount === 1) await client.query(`DROP OWNED BY ${quoteIdentifier(role)}`);
    });
  });
  return role;
}

/** Boots the module in this process; returns the app context. */
async function bootApp(url, tenancy, applicationName, migrateOnStartup = true) {
  class AppModule {}
  Module({
    imports: [
      DatabaseModule.forRoot({
        connection: url,
        pool: { max: BUDGET, applicationName },
        migrateOnStartup,
        tenancy: { interceptor: false, ...tenancy },
      }),
    ],
  })(AppModule);
  return NestFactory.createApplicationContext(AppModule, { logger: ['error', 'warn'] });
}

// ---------------------------------------------------------------------------------------------
// 1. Boot with N registered tenants

function startChild(url, registrySchema, role, probeTenant, idleMs = 0) {
  return startManyTenantsApp(url, registrySchema, {
    BENCH_POOLED_ROLE: role,
    ...(probeTenant ? { BENCH_PROBE_TENANT: probeTenant } : {}),
    BENCH_IDLE_MS: String(idleMs),
  });
}

const bootId = (i) => `t${String(i).padStart(6, '0')}`;

async function bootPart(ctx, config, failures) {
  const { tenants: n, rounds } = config;
  const database = await ctx.createDatabase('bench_tiers_boot');
  const url = database.url;
  const role = pooledRole(ctx, url);
  const registries = { 0: 'bench_tiers_none', [n]: 'bench_tiers_fleet' };
  // A first start per registry creates its table (the library's own DDL); then fill one.
  for (const schema of Object.values(registries)) await startChild(url, schema, role);
  const schemaEvery = Math.round(1 / SCHEMA_SHARE);
  const t0 = performance.now();
  await withClient(url, async (client) => {
    // Pooled tenants need only their row; schema tenants' schemas are never read at boot
    // (migrateOnStartup: false), so the fleet is made of rows only, in one statement.
    await client.query(
      `INSERT INTO ${registries[n]}.tenants (id, schema_name, status, tier, migrated_version)
       SELECT id, 'tenant_' || id, 'active', CASE WHEN g % $2 = 0 THEN 'schema' ELSE 'pooled' END, 0
         FROM generate_series(0, $1 - 1) g, LATERAL (SELECT 't' || lpad(g::text, 6, '0') AS id) i`,
      [n, schemaEvery],
    );
    await client.query('VACUUM (ANALYZE)');
  });
  ctx.log(
    `boot: ${fmtInt(n)} registry rows inserted (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
  );
  for (const schema of Object.values(registries)) await startChild(url, schema, role); // warm-up

  const samples = { 0: [], [n]: [] };
  for (let r = 0; r < rounds; r++) {
    for (const count of r % 2 === 0 ? [0, n] : [n, 0]) {
      // The last id is pooled (99 of 100), the first one a schema tenant.
      const probe = count > 0 ? bootId(count - 1) : undefined;
      const res = await startChild(url, registries[count], role, probe, IDLE_MS);
      samples[count].push(res);
      ctx.log(
        `  boot round ${r + 1}/${rounds} ${fmtInt(count).padStart(7)} tenants: ${res.readyMs.toFixed(0)} ms (CPU ${res.readyCpuMs.toFixed(0)} ms), heap ${(res.heapUsed / MiB).toFixed(1)} MiB, RSS ${(res.rss / MiB).toFixed(1)} MiB (peak ${(res.maxRssKiB / 1024).toFixed(1)}), idle heap growth ${(res.idleHeapGrowth / 1024).toFixed(0)} KiB in ${IDLE_MS} ms`,
      );
      if (res.size !== count) failures.push(`boot: registry.size ${res.size}, expected ${count}`);
      if (!res.synced) failures.push(`boot: ${count} tenants, not synced once ready`);
      if (probe && (!res.probeFound || res.probeTier !== 'pooled'))
        failures.push(`boot: tenant ${probe} not found as a pooled tenant once ready`);
    }
  }
  const summary = (list) => ({
    readyMs: median(list.map((s) => s.readyMs)),
    readyCpuMs: median(list.map((s) => s.readyCpuMs)),
    heap: median(list.map((s) => s.heapUsed)),
    rss: median(list.map((s) => s.rss)),
    peakRss: median(list.map((s) => s.maxRssKiB * 1024)),
    newSpace: median(list.map((s) => s.newSpace ?? 0)),
    idleGrowth: median(list.map((s) => s.idleHeapGrowth ?? 0)),
  });
  const base = summary(samples[0]);
  const fleet = summary(samples[n]);
  const rows = [
    { tenants: 0, ...base },
    { tenants: n, ...fleet },
  ].map((s) => ({
    tenants: s.tenants,
    pooled: s.tenants - Math.ceil(s.tenants / schemaEvery),
    readyMs: round(s.readyMs, 1),
    readyDeltaMs: round(s.readyMs - base.readyMs, 1),
    readyCpuMs: round(s.readyCpuMs, 1),
    readyCpuDeltaMs: round(s.readyCpuMs - base.readyCpuMs, 1),
    heapMiB: round(s.heap / MiB, 1),
    heapDeltaMiB: round((s.heap - base.heap) / MiB, 1),
    rssMiB: round(s.rss / MiB, 1),
    rssDeltaMiB: round((s.rss - base.rss) / MiB, 1),
    peakRssMiB: round(s.peakRss / MiB, 1),
    peakRssDeltaMiB: round((s.peakRss - base.peakRss) / MiB, 1),
    newSpaceMiB: round(s.newSpace / MiB, 1),
    heapBytesPerTenant: s.tenants ? round((s.heap - base.heap) / s.tenants) : undefined,
    idleKiBPerS: round(s.idleGrowth / 1024 / (IDLE_MS / 1000), 1),
  }));
  // Heartbeats compare the view's digest with the table's: done without garbage per tenant, an
  // idle instance's heap stays still. (Iterating the view as [id, slot] pairs made ~30 bytes of
  // garbage per tenant per heartbeat: 2.5 MiB/s at 100,000, so V8 never shrank back.)
  const idleBytesPerTenantS = (fleet.idleGrowth - base.idleGrowth) / n / (IDLE_MS / 1000);
  if (idleBytesPerTenantS > IDLE_BYTES_PER_TENANT_S_MAX) {
    failures.push(
      `boot: idle heap grows ${idleBytesPerTenantS.toFixed(1)} B per tenant per second (at most ${IDLE_BYTES_PER_TENANT_S_MAX})`,
    );
  }
  rows[0].pooled = 0;
  return {
    rows,
    rounds: { 0: samples[0], [n]: samples[n] },
    table: {
      title: `Boot with ${fmtInt(n)} registered tenants (${fmtInt(rows[1].pooled)} pooled) vs none, pooled tier on: createApplicationContext() to ready, fresh process each, median of ${rounds} (memory after a full GC; peak = max RSS of the process)`,
      columns: [
        { key: 'tenants', label: 'tenants', format: fmtInt },
        { key: 'pooled', label: 'pooled', format: fmtInt },
        { key: 'readyMs', label: 'ready ms', format: fmtFixed(0) },
        { key: 'readyDeltaMs', label: 'Δ ready ms', format: fmtFixed(0) },
        { key: 'readyCpuMs', label: 'CPU ms to ready', format: fmtFixed(0) },
        { key: 'readyCpuDeltaMs', label: 'Δ CPU ms', format: fmtFixed(0) },
        { key: 'heapMiB', label: 'heap MiB', format: fmtFixed(1) },
        { key: 'heapDeltaMiB', label: 'Δ heap MiB', format: fmtFixed(1) },
        { key: 'rssMiB', label: 'RSS MiB', format: fmtFixed(1) },
        { key: 'rssDeltaMiB', label: 'Δ RSS MiB', format: fmtFixed(1) },
        { key: 'peakRssMiB', label: 'peak RSS MiB', format: fmtFixed(1) },
        { key: 'peakRssDeltaMiB', label: 'Δ peak RSS MiB', format: fmtFixed(1) },
        { key: 'newSpaceMiB', label: 'V8 new space MiB', format: fmtFixed(1) },
        {
          key: 'heapBytesPerTenant',
          label: 'heap B/tenant',
          format: (v) => (Number.isFinite(v) ? fmtInt(v) : ''),
        },
        { key: 'idleKiBPerS', label: 'idle heap KiB/s', format: fmtFixed(1) },
      ],
      rows,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// 2. Point lookups: pooled vs schema, one app

async function lookupPart(ctx, config, failures) {
  const database = await ctx.createDatabase('bench_tiers_lookup');
  const url = database.url;
  const role = pooledRole(ctx, url);
  const migrations = await writeMigrations('bench-tiers', { '001_items.sql': ITEMS_SQL });
  ctx.defer(() => migrations.remove());
  const app = await bootApp(
    url,
    { migrations: migrations.dir, pooled: { role } },
    'bench_tiers_lookup',
  );
  ctx.defer(() => app.close());
  const tenants = app.get(TenantService);
  const registry = app.get(TenantRegistry);
  const { perTier } = config;
  // Ids share one numbering: tenant k's rows are k*ROWS+1 … k*ROWS+ROWS in either tier, so the
  // lookups are the same statement with the same kind of key (and unique across the pooled table
  // whichever keys the pooled adaptation makes).
  const schemaIds = Array.from({ length: perTier }, (_, k) => `s${String(k).padStart(4, '0')}`);
  const pooledIds = Array.from({ length: perTier }, (_, k) => `p${String(k).padStart(4, '0')}`);
  const t0 = performance.now();
  await mapLimit(schemaIds, 4, (id) => tenants.create(id));
  await mapLimit(pooledIds, 8, (id) => tenants.create(id, { tier: 'pooled' }));
  const pooledSchema = 'tenancy_pooled';
  await withClient(url, async (client) => {
    for (const [k, id] of schemaIds.entries()) {
      await client.query(
        `INSERT INTO ${quoteIdentifier(`tenant_${id}`)}.items (id, tenant, payload)
         SELECT $1::int + g, $2, repeat(md5(g::text), 3) FROM generate_series(1, ${ROWS}) g`,
        [(k + perTier) * ROWS, id],
      );
    }
    await client.query(
      `INSERT INTO ${pooledSchema}.items (tenant_id, id, tenant, payload)
       SELECT t.id, (t.n::int - 1) * ${ROWS} + g, t.id, repeat(md5(g::text), 3)
         FROM unnest($1::text[]) WITH ORDINALITY AS t(id, n), generate_series(1, ${ROWS}) g`,
      [pooledIds],
    );
    await client.query('VACUUM (ANALYZE)');
  });
  ctx.log(
    `lookups: ${perTier} schema and ${perTier} pooled tenants ready (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
  );

  const variants = {
    pooled: { ids: pooledIds, base: 0 },
    schema: { ids: schemaIds, base: perTier },
  };
  const operationFor =
    ({ ids, base }) =>
    async (random) => {
      const k = random.int(ids.length);
      const id = ids[k];
      const entry = registry.requireNow(id) ?? (await registry.require(id));
      const key = (k + base) * ROWS + 1 + random.int(ROWS);
      const row = await entry.db.fetchOne(LOOKUP_SQL, [key]);
      return row?.tenant === id && row.id === key;
    };
  const run = (name, durationMs, seed) =>
    runClosedLoop({
      concurrency: CONCURRENCY,
      durationMs,
      seed,
      operation: operationFor(variants[name]),
      record: false,
    });
  for (const name of ['pooled', 'schema']) await run(name, config.warmupMs, 1);
  const results = { pooled: [], schema: [] };
  const ratios = [];
  for (let r = 0; r < config.rounds; r++) {
    const round1 = {};
    for (const name of r % 2 === 0 ? ['pooled', 'schema'] : ['schema', 'pooled']) {
      const res = await run(name, config.roundMs, 100 + r);
      const seconds = res.elapsedMs / 1000;
      round1[name] = {
        qps: res.operations / seconds,
        cpuUsPerOp: (res.cpu.user + res.cpu.system) / res.operations,
      };
      results[name].push(round1[name]);
      if (res.errors || res.mismatches)
        failures.push(
          `lookups ${name}: ${res.errors} errors (${res.firstError?.message}), ${res.mismatches} wrong rows`,
        );
    }
    ratios.push(round1.pooled.qps / round1.schema.qps);
    ctx.log(
      `  lookups round ${r + 1}/${config.rounds}: pooled ${fmtInt(round(round1.pooled.qps))} q/s, schema ${fmtInt(round(round1.schema.qps))} q/s, ratio ${ratios.at(-1).toFixed(3)}`,
    );
  }
  const stats = registry.requireNow(pooledIds[0]).db.statementStats;
  const rows = ['schema', 'pooled'].map((name) => ({
    tier: name,
    qps: round(median(results[name].map((x) => x.qps))),
    cpuUsPerOp: round(median(results[name].map((x) => x.cpuUsPerOp)), 1),
  }));
  rows[1].ratio = round(median(ratios), 3);
  return {
    rows,
    ratios: ratios.map((x) => round(x, 3)),
    hitRate: stats ? round(stats.hitRate, 4) : undefined,
    table: {
      title: `Point lookups by primary key, ${perTier} tenants per tier, ${ROWS} rows each, ${CONCURRENCY} workers, pool.max ${BUDGET}, managed statements on (default), median of ${config.rounds} alternating rounds × ${config.roundMs / 1000} s`,
      columns: [
        { key: 'tier', label: 'tier' },
        { key: 'qps', label: 'lookups/s', format: fmtInt },
        {
          key: 'ratio',
          label: 'pooled/schema (median of rounds)',
          format: (v) => (v ? v.toFixed(3) : 'baseline'),
        },
        { key: 'cpuUsPerOp', label: 'client CPU µs/lookup', format: fmtFixed(1) },
      ],
      rows,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// 3. Catalog and backend memory: N tenants all pooled vs all in schemas

const CATALOG_SQL = `SELECT
    (SELECT count(*) FROM pg_class)::int AS classes,
    (SELECT count(*) FROM pg_attribute)::int AS attributes,
    (SELECT count(*) FROM pg_type)::int AS types,
    (SELECT count(*) FROM pg_depend)::int AS depends,
    (SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c
      WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.relkind = 'r')::float8 AS bytes`;

const catalogId = (i) => `c${String(i).padStart(5, '0')}`;

/** Schemas `from`..`to - 1` from the sample files, one project each (25 per statement, 2 conns). */
async function createSchemas(url, from, to) {
  const pool = createPool({ connectionString: url, max: 2, application_name: 'bench_tiers_setup' });
  try {
    const batches = [];
    for (let i = from; i < to; i += 25) {
      const parts = [];
      for (let j = i; j < Math.min(to, i + 25); j++) {
        const schema = `tenant_${catalogId(j)}`;
        parts.push(`CREATE SCHEMA ${quoteIdentifier(schema)};`);
        for (const sql of Object.values(SAMPLE_FILES)) parts.push(expandFor(schema, sql));
        parts.push(
          `INSERT INTO ${quoteIdentifier(schema)}.projects (name) VALUES ('${catalogId(j)}');`,
        );
      }
      batches.push(parts.join('\n'));
    }
    let next = 0;
    const worker = async () => {
      while (next < batches.length) await pool.query(batches[next++]);
    };
    await Promise.all([worker(), worker()]);
  } finally {
    await pool.end();
  }
}

/** Every one of BUDGET connections runs one lookup per tenant, as its tier sends it. */
async function sweep(pool, ids, lookup) {
  const clients = [];
  try {
    for (let i = 0; i < BUDGET; i++) clients.push(await pool.connect());
    await Promise.all(
      clients.map(async (client) => {
        for (const id of ids) await lookup(client, id);
      }),
    );
  } finally {
    for (const c of clients) c.release();
  }
}

async function catalogPart(ctx, config, failures) {
  const probe = createPool({ connectionString: ctx.serverUrl, max: 1 });
  const readable = await canReadMemory(probe).finally(() => probe.end());
  const empty = await ctx.createDatabase('bench_tiers_empty');
  const baseline = await withClient(empty.url, (c) => c.query(CATALOG_SQL)).then((r) => r.rows[0]);
  const schemaDb = await ctx.createDatabase('bench_tiers_schemas');
  const pooledDb = await ctx.createDatabase('bench_tiers_pooled');
  const role = pooledRole(ctx, pooledDb.url);
  const migrations = await writeMigrations('bench-tiers-sample', SAMPLE_FILES);
  ctx.defer(() => migrations.remove());
  // The pooled schema as the library makes it: the same files, adapted after each (migrateAll).
  const app = await bootApp(
    pooledDb.url,
    { migrations: migrations.dir, pooled: { role } },
    'bench_tiers_catalog',
  );
  const pooledSchema = 'tenancy_pooled';
  await app.close();

  const rows = [];
  let created = 0;
  for (const n of config.counts) {
    const t0 = performance.now();
    await createSchemas(schemaDb.url, created, n);
    const ids = Array.from({ length: n }, (_, i) => catalogId(i));
    await withClient(pooledDb.url, async (client) => {
      await client.query(
        `INSERT INTO ${pooledSchema}.projects (tenant_id, name) SELECT id, id FROM unnest($1::text[]) id`,
        [ids.slice(created)],
      );
    });
    created = n;
    for (const db of [schemaDb, pooledDb])
      await withClient(db.url, (c) => c.query('VACUUM (ANALYZE)'));
    ctx.log(
      `catalog: ${fmtInt(n)} tenants in each tier (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );

    const tiers = {
      schema: {
        url: schemaDb.url,
        lookup: (client, id) =>
          client.query(
            `SELECT id, name FROM ${quoteIdentifier(`tenant_${id}`)}.projects WHERE id = $1`,
            [1],
          ),
      },
      pooled: {
        url: pooledDb.url,
        // What a pooled manager's statement does on the server, in one round trip as it does:
        // the scope set for the transaction (role and tenant), then the query under row-level
        // security. Ids are [a-z0-9] (the default idPattern), so literals are safe here.
        lookup: async (client, id) => {
          const results = await client.query(
            `BEGIN; SELECT set_config('role', '${role}', true), set_config('tenancy.tenant_id', '${id}', true);
             SELECT id, name FROM ${pooledSchema}.projects WHERE name = '${id}'; COMMIT`,
          );
          const found = results[2].rows.length;
          if (found !== 1) throw new Error(`pooled tenant ${id}: ${found} rows`);
        },
      },
    };
    for (const [tier, { url, lookup }] of Object.entries(tiers)) {
      const catalog = await withClient(url, (c) => c.query(CATALOG_SQL)).then((r) => r.rows[0]);
      const row = {
        tier,
        tenants: n,
        classes: catalog.classes - baseline.classes,
        attributes: catalog.attributes - baseline.attributes,
        types: catalog.types - baseline.types,
        depends: catalog.depends - baseline.depends,
        catalogMiB: round((catalog.bytes - baseline.bytes) / MiB, 1),
      };
      if (readable) {
        const pool = createPool({
          connectionString: url,
          max: BUDGET,
          idleTimeoutMillis: 0,
          application_name: `bench_tiers_${tier}`,
        });
        try {
          const fresh = await memoryPerConnection(pool, BUDGET);
          const t1 = performance.now();
          await sweep(pool, ids, lookup);
          row.sweepSeconds = round((performance.now() - t1) / 1000, 1);
          const after = await memoryPerConnection(pool, BUDGET);
          row.freshMiB = fresh.totalMiB;
          row.afterMiB = after.totalMiB;
          row.relcacheMiB = after.relcacheMiB;
        } catch (err) {
          failures.push(`catalog sweep ${tier} ${n}: ${err.message}`);
        } finally {
          await pool.end();
        }
      }
      rows.push(row);
      ctx.log(
        `  ${tier} ${fmtInt(n)}: ${fmtInt(row.classes)} relations, ${row.catalogMiB} MiB catalog, ${row.afterMiB ?? '?'} MiB per backend after the sweep`,
      );
    }
  }
  for (const row of rows) {
    const schemaRow = rows.find((r) => r.tier === 'schema' && r.tenants === row.tenants);
    row.memoryVsSchema =
      row.afterMiB && schemaRow.afterMiB ? round(row.afterMiB / schemaRow.afterMiB, 3) : undefined;
    row.catalogVsSchema = schemaRow.catalogMiB
      ? round(row.catalogMiB / schemaRow.catalogMiB, 4)
      : undefined;
  }
  return {
    rows,
    baseline,
    table: {
      title: `Catalog rows and size added over an empty database, and server memory per connection after each of ${BUDGET} connections served every tenant once (the sample app's two tables and index)`,
      columns: [
        { key: 'tenants', label: 'tenants', format: fmtInt },
        { key: 'tier', label: 'tier' },
        { key: 'classes', label: '+pg_class', format: fmtInt },
        { key: 'attributes', label: '+pg_attribute', format: fmtInt },
        { key: 'types', label: '+pg_type', format: fmtInt },
        { key: 'depends', label: '+pg_depend', format: fmtInt },
        { key: 'catalogMiB', label: '+catalog MiB', format: fmtFixed(1) },
        {
          key: 'catalogVsSchema',
          label: 'catalog vs schema',
          format: (v) => (v === undefined ? '' : v.toFixed(4)),
        },
        { key: 'freshMiB', label: 'fresh MiB/conn', format: fmtFixed(1) },
        { key: 'afterMiB', label: 'after sweep MiB/conn', format: fmtFixed(1) },
        { key: 'relcacheMiB', label: 'of which relcache', format: fmtFixed(1) },
        {
          key: 'memoryVsSchema',
          label: 'memory vs schema',
          format: (v) => (v === undefined ? '' : v.toFixed(3)),
        },
        { key: 'sweepSeconds', label: 'sweep s', format: fmtFixed(1) },
      ],
      rows,
    },
  };
}

export default {
  name: 'tiers',
  description:
    'The pooled tier at scale: boot with 100,000 tenants, pooled vs schema point lookups, catalog and backend memory pooled vs schema',

  async run(ctx) {
    const config = ctx.quick ? QUICK : FULL;
    const failures = [];
    const notes = [];
    if (ctx.quick)
      notes.push(
        `quick mode: boot ${fmtInt(config.boot.tenants)} tenants, ${config.lookups.perTier} tenants per tier for lookups, catalog at ${config.catalog.counts.join('/')} (full: 100,000; 200; 2,000 and 10,000)`,
      );
    // BENCH_TIERS_PARTS=boot,lookups,catalog runs only some parts (all by default).
    const parts = new Set((process.env.BENCH_TIERS_PARTS ?? 'boot,lookups,catalog').split(','));
    const boot = parts.has('boot') ? await bootPart(ctx, config.boot, failures) : undefined;
    const lookups = parts.has('lookups')
      ? await lookupPart(ctx, config.lookups, failures)
      : undefined;
    const catalog = parts.has('catalog')
      ? await catalogPart(ctx, config.catalog, failures)
      : undefined;
    const top = boot?.rows[1];
    if (top)
      notes.push(
        `tiers: ${fmtInt(top.tenants)} tenants boot in ${top.readyMs.toFixed(0)} ms (+${top.readyDeltaMs.toFixed(0)} ms; CPU +${top.readyCpuDeltaMs.toFixed(0)} ms, +${top.heapDeltaMiB} MiB heap, +${top.rssDeltaMiB} MiB RSS, +${top.peakRssDeltaMiB} MiB peak RSS over none)`,
      );
    if (lookups)
      notes.push(
        `tiers: pooled point lookups at ${lookups.rows[1].ratio}× schema (rounds ${lookups.ratios.join(', ')})`,
      );
    return {
      failures,
      notes,
      data: {
        config,
        boot: boot?.rows,
        bootRounds: boot?.rounds,
        lookups: lookups?.rows,
        ratios: lookups?.ratios,
        hitRate: lookups?.hitRate,
        catalog: catalog?.rows,
        catalogBaseline: catalog?.baseline,
      },
      tables: [boot?.table, lookups?.table, catalog?.table].filter(Boolean),
      chart: lookups && {
        title: 'Pooled vs schema point lookups (lookups/s, higher is better)',
        unit: 'lookups/s',
        series: [
          { key: 'schema', label: 'schema tenant', color: '#4e79a7' },
          { key: 'pooled', label: 'pooled tenant', color: '#f28e2b' },
        ],
        groups: [
          {
            label: `${config.lookups.perTier} tenants per tier`,
            values: Object.fromEntries(lookups.rows.map((r) => [r.tier, r.qps])),
          },
        ],
      },
    };
  },
};
