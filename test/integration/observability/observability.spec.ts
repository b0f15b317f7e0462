import { Test, type TestingModule } from '@nestjs/testing';
import { MeterProvider, MetricReader, DataPointType } from '@opentelemetry/sdk-metrics';
import { Registry } from 'prom-client';
import {
  DatabaseModule,
  getSchemaDbToken,
  SchemaDb,
  TenantService,
  type DatabaseModuleOptions,
} from '../../../lib/index.js';
import { DatabaseMonitor, type QueryEvent } from '../../../lib/observability/index.js';
import { useTestDatabase } from '../../support/database.js';
import { holdTransaction } from '../../support/hold.js';
import { useMigrationFolders } from '../../support/migrations.js';

class TestReader extends MetricReader {
  protected override async onForceFlush() {}
  protected override async onShutdown() {}
}

describe('observability', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  const apps: TestingModule[] = [];

  async function boot(
    options: Partial<DatabaseModuleOptions>,
    tenancy?: { migrations: string; registrySchema: string },
  ) {
    const app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          schemas: { obs: {} },
          ...(tenancy ? { tenancy: { ...tenancy, interceptor: false } } : {}),
          ...options,
        }),
      ],
    }).compile();
    apps.push(app);
    await app.init();
    return app;
  }

  afterEach(async () => {
    await Promise.all(apps.splice(0).map((a) => a.close()));
  });

  it('gives hooks the expanded SQL, schema, tenant, duration, row count and error', async () => {
    const events: QueryEvent[] = [];
    const migrations = await folder({ '001_t.sql': 'CREATE TABLE {{tables.items}} (id int);' });
    const app = await boot(
      { onQuery: (e) => events.push(e) },
      { migrations, registrySchema: 'obs_reg' },
    );
    const db = app.get<SchemaDb>(getSchemaDbToken('obs'));
    await db.execute('CREATE SCHEMA IF NOT EXISTS {{schema}}');
    await db.execute('CREATE TABLE {{tables.things}} (id int)');
    await db.execute('INSERT INTO {{tables.things}} VALUES ($1), ($2)', [1, 2]);
    await expect(db.execute('SELECT * FROM {{tables.nothing}}')).rejects.toMatchObject({
      code: '42P01',
    });
    const tenants = app.get(TenantService);
    await tenants.create('hooked');
    await tenants.run('hooked', async () =>
      (await tenants.db('hooked')).fetchAll('SELECT * FROM {{tables.items}}'),
    );

    const insert = events.find((e) => e.operation === 'INSERT')!;
    expect(insert).toMatchObject({
      sql: 'INSERT INTO "obs"."things" VALUES ($1), ($2)',
      params: [1, 2],
      schema: 'obs',
      tenantId: undefined,
      rowCount: 2,
      error: undefined,
      inTransaction: false,
    });
    expect(insert.durationMs).toBeGreaterThan(0);
    const failed = events.find((e) => e.error);
    expect(failed).toMatchObject({
      operation: 'SELECT',
      rowCount: null,
      error: expect.objectContaining({ code: '42P01' }),
    });
    expect(events.find((e) => e.tenantId === 'hooked')).toMatchObject({
      schema: 'tenant_hooked',
      sql: 'SELECT * FROM "tenant_hooked"."items"',
    });
  });

  it('ignores a hook that throws: queries and other hooks carry on', async () => {
    const seen: string[] = [];
    const app = await boot({
      onQuery: [
        () => {
          throw new Error('broken hook');
        },
        (e) => seen.push(e.operation),
      ],
    });
    const db = app.get<SchemaDb>(getSchemaDbToken());
    expect(await db.fetchValue('SELECT 41 + 1')).toBe(42);
    expect(await db.transaction((tx) => tx.fetchValue('SELECT 7'))).toBe(7);
    expect(seen).toEqual(['SELECT', 'SELECT']);
  });

  it('records slow queries with parameters redacted by default', async () => {
    const app = await boot({ slowQueryMs: 50, slowQueryLimit: 2 });
    const db = app.get<SchemaDb>(getSchemaDbToken('obs'));
    await db.fetchValue('SELECT pg_sleep(0.06), $1::text AS secret', ['s3cret']);
    await db.fetchValue('SELECT 1');
    const monitor = app.get(DatabaseMonitor);
    const slow = monitor.getSlowQueries();
    expect(slow).toHaveLength(1);
    expect(slow[0]).toMatchObject({
      sql: 'SELECT pg_sleep(0.06), $1::text AS secret',
      schema: 'obs',
      failed: false,
    });
    expect(slow[0].durationMs).toBeGreaterThanOrEqual(50);
    expect(slow[0]).not.toHaveProperty('params');
    for (let i = 0; i < 3; i++) await db.fetchValue('SELECT pg_sleep(0.06)');
    expect(monitor.getSlowQueries()).toHaveLength(2);
  });

  it('keeps parameters of slow queries when asked to', async () => {
    const app = await boot({ slowQueryMs: 20, logQueryParams: true });
    const db = app.get<SchemaDb>(getSchemaDbToken());
    await db.fetchValue('SELECT pg_sleep(0.03), $1::int', [5]);
    expect(app.get(DatabaseMonitor).getSlowQueries()[0]).toMatchObject({ params: [5] });
  });

  it('reports pool statistics', async () => {
    const app = await boot({ pool: { max: 4 } });
    const db = app.get<SchemaDb>(getSchemaDbToken());
    const monitor = app.get(DatabaseMonitor);
    const held = await holdTransaction(db);
    expect(monitor.getPoolStats()).toEqual({
      total: 1,
      idle: 0,
      waiting: 0,
      max: 4,
      utilisation: 0.25,
    });
    await held.release();
    expect(monitor.getPoolStats()).toMatchObject({ idle: 1, utilisation: 0 });
    expect(await monitor.ping()).toMatchObject({ ok: true });
  });

  it('exports Prometheus metrics, capping tenant labels', async () => {
    const registry = new Registry();
    const migrations = await folder({ '001_t.sql': 'CREATE TABLE {{tables.items}} (id int);' });
    const app = await boot(
      { metrics: { prometheus: { registry }, tenantLabel: true, maxTenantLabels: 2 } },
      { migrations, registrySchema: 'prom_reg' },
    );
    const tenants = app.get(TenantService);
    for (const id of ['p1', 'p2', 'p3']) {
      await tenants.create(id);
      await tenants.run(id, async () =>
        (await tenants.db(id)).fetchAll('SELECT * FROM {{tables.items}}'),
      );
    }
    await app.get<SchemaDb>(getSchemaDbToken('obs')).fetchValue('SELECT 1');
    const text = await registry.metrics();
    expect(text).toMatch(
      /pg_tenancy_queries_total\{schema="tenant_\*",operation="SELECT",outcome="ok",tenant="p1"\} 1/,
    );
    expect(text).toMatch(
      /pg_tenancy_queries_total\{schema="tenant_\*",operation="SELECT",outcome="ok",tenant="other"\} 1/,
    );
    expect(text).toMatch(
      /pg_tenancy_queries_total\{schema="obs",operation="SELECT",outcome="ok",tenant=""\} 1/,
    );
    expect(text).toMatch(/pg_tenancy_query_duration_seconds_bucket\{le="0.005",schema="obs"/);
    expect(text).toMatch(/pg_tenancy_pool_connections\{state="idle"\} \d+/);
    expect(text).toMatch(/pg_tenancy_pool_max 10/);
    // Tenant affinity (on by default): the tenants' checkouts, by the connection that served them.
    const served = (kind: string) =>
      Number(
        new RegExp(`pg_tenancy_pool_affinity_checkouts_total\\{served="${kind}"\\} (\\d+)`).exec(
          text,
        )?.[1],
      );
    expect(served('preferred') + served('warm') + served('stolen')).toBeGreaterThanOrEqual(2);
    expect(text).toMatch(/pg_tenancy_pool_recycled_total 0/);
  });

  it('bounds Prometheus series by the tenant-label cap and the named schemas, with 300 tenants', async () => {
    const TENANTS = 300;
    const CAP = 5;
    const count = async (registry: Registry, metric: string) =>
      (await registry.metrics()).split('\n').filter((line) => line.startsWith(`${metric}{`)).length;
    const registries = { labelled: new Registry(), unlabelled: new Registry() };
    const labelled = await boot(
      {
        pool: { max: 8 },
        metrics: {
          prometheus: { registry: registries.labelled },
          tenantLabel: true,
          maxTenantLabels: CAP,
        },
      },
      { migrations: await folder({}), registrySchema: 'series_reg' },
    );
    const tenants = labelled.get(TenantService);
    const ids = Array.from({ length: TENANTS }, (_, i) => `s${i}`);
    for (let i = 0; i < ids.length; i += 20) {
      await Promise.all(ids.slice(i, i + 20).map((id) => tenants.create(id)));
    }
    const unlabelled = await boot(
      { pool: { max: 8 }, metrics: { prometheus: { registry: registries.unlabelled } } },
      { migrations: await folder({}), registrySchema: 'series_reg' },
    );
    for (const app of [labelled, unlabelled]) {
      const service = app.get(TenantService);
      // Inside the tenant's context and outside it (a job holding a tenant's manager).
      await service.forEach((db) => db.fetchValue('SELECT 1').then(() => undefined), {
        concurrency: 8,
      });
      for (const id of ids.slice(0, 50)) await (await service.db(id)).fetchValue('SELECT 1');
      await app.get<SchemaDb>(getSchemaDbToken('obs')).fetchValue('SELECT 1');
      await app.get<SchemaDb>(getSchemaDbToken()).fetchValue('SELECT 1');
    }
    // Schema values: "obs", "" (default manager), "tenant_*". Tenant values: CAP ids, "other", "".
    const schemaValues = 3;
    const labelledSeries = await count(registries.labelled, 'pg_tenancy_queries_total');
    expect(labelledSeries).toBeGreaterThan(CAP);
    expect(labelledSeries).toBeLessThanOrEqual(schemaValues * (CAP + 2));
    expect(await count(registries.unlabelled, 'pg_tenancy_queries_total')).toBeLessThanOrEqual(
      schemaValues,
    );
    const buckets = await count(registries.labelled, 'pg_tenancy_query_duration_seconds_bucket');
    expect(buckets).toBeLessThanOrEqual(schemaValues * (CAP + 2) * 13);
  }, 120_000);

  it('exports OpenTelemetry metrics to a given meter', async () => {
    const reader = new TestReader();
    const provider = new MeterProvider({ readers: [reader] });
    const app = await boot({ metrics: { openTelemetry: { meter: provider.getMeter('test') } } });
    await app.get<SchemaDb>(getSchemaDbToken('obs')).fetchValue('SELECT 1');
    const { resourceMetrics } = await reader.collect();
    const metrics = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);
    const queries = metrics.find((m) => m.descriptor.name === 'pg_tenancy.queries')!;
    expect(queries.dataPointType).toBe(DataPointType.SUM);
    expect(queries.dataPoints).toEqual([
      expect.objectContaining({
        attributes: { schema: 'obs', operation: 'SELECT', outcome: 'ok' },
        value: 1,
      }),
    ]);
    expect(metrics.map((m) => m.descriptor.name)).toEqual(
      expect.arrayContaining([
        'pg_tenancy.query.duration',
        'pg_tenancy.pool.connections',
        'pg_tenancy.pool.affinity_checkouts',
        'pg_tenancy.pool.recycled',
      ]),
    );
    await provider.shutdown();
  });
});
