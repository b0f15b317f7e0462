import { Injectable } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import {
  DatabaseModule,
  InjectTenantDb,
  InvalidTenantIdError,
  SchemaDb,
  TenantAlreadyExistsError,
  TenantContextMissingError,
  TenantCreationError,
  TenantNotFoundError,
  TenantService,
  TenantSuspendedError,
  type TenancyOptions,
} from '../../../lib/index.js';
import { TenantRegistry } from '../../../lib/tenancy/index.js';
import { adminPool, useTestDatabase } from '../../support/database.js';
import { useMigrationFolders, write } from '../../support/migrations.js';

const TENANT_FILES = {
  '001_projects.sql':
    'CREATE TABLE {{tables.projects}} (id serial PRIMARY KEY, name text NOT NULL);',
  '002_tasks.sql':
    'CREATE TABLE {{tables.tasks}} (id serial PRIMARY KEY, project_id int REFERENCES {{tables.projects}} (id));',
};

@Injectable()
class ProjectsService {
  constructor(@InjectTenantDb() readonly db: SchemaDb) {}
  names() {
    return this.db.fetchAll<{ name: string }>('SELECT name FROM {{tables.projects}} ORDER BY name');
  }
}

describe('tenant lifecycle', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;
  const apps: TestingModule[] = [];

  async function boot(
    tenancy: TenancyOptions,
    extra: { migrateOnStartup?: boolean; poolMax?: number } = {},
  ) {
    const app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          pool: { max: extra.poolMax ?? 6 },
          migrateOnStartup: extra.migrateOnStartup,
          tenancy: { interceptor: false, ...tenancy },
        }),
      ],
      providers: [ProjectsService],
    }).compile();
    apps.push(app);
    await app.init();
    return { app, tenants: app.get(TenantService), registry: app.get(TenantRegistry) };
  }
  const schemaExists = async (schema: string) =>
    (await admin.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])).rowCount === 1;

  beforeAll(() => {
    admin = adminPool(database.current.url);
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
  });
  afterAll(() => admin.end());

  it('creates, lists, suspends, resumes and drops tenants', async () => {
    const migrations = await folder(TENANT_FILES);
    const { tenants } = await boot({ migrations, registrySchema: 'reg_life' });
    const acme = await tenants.create('acme', { metadata: { plan: 'pro' } });
    expect(acme).toMatchObject({
      id: 'acme',
      schema: 'tenant_acme',
      status: 'active',
      metadata: { plan: 'pro' },
      migratedVersion: 2,
    });
    expect(await schemaExists('tenant_acme')).toBe(true);
    await tenants.create('globex');
    await expect(tenants.create('acme')).rejects.toBeInstanceOf(TenantAlreadyExistsError);
    expect((await tenants.list()).map((t) => t.id)).toEqual(['acme', 'globex']);

    expect((await tenants.suspend('globex')).status).toBe('suspended');
    await expect(tenants.db('globex')).rejects.toBeInstanceOf(TenantSuspendedError);
    expect((await tenants.resume('globex')).status).toBe('active');
    expect((await tenants.db('globex')).schema).toBe('tenant_globex');

    await tenants.drop('globex');
    expect(await schemaExists('tenant_globex')).toBe(false);
    expect(await tenants.get('globex')).toBeNull();
    await expect(tenants.db('globex')).rejects.toBeInstanceOf(TenantNotFoundError);
    await expect(tenants.drop('globex')).rejects.toBeInstanceOf(TenantNotFoundError);
    await expect(tenants.suspend('nobody')).rejects.toBeInstanceOf(TenantNotFoundError);
  });

  it('rejects malformed ids before any SQL', async () => {
    const { tenants, registry } = await boot({ registrySchema: 'reg_bad' });
    for (const id of ['Bad', 'a b', 'x;drop', '', 'a'.repeat(41), '../x']) {
      await expect(tenants.create(id)).rejects.toBeInstanceOf(InvalidTenantIdError);
      await expect(registry.find(id)).rejects.toBeInstanceOf(InvalidTenantIdError);
    }
    expect((await tenants.list()).length).toBe(0);
  });

  it('creates all or nothing: a failing tenant migration leaves no row and no schema', async () => {
    const migrations = await folder({
      ...TENANT_FILES,
      '003_broken.sql':
        'CREATE TABLE {{tables.broken}} (id int);\nSELECT missing_column FROM {{tables.broken}};',
    });
    const { tenants } = await boot(
      { migrations, registrySchema: 'reg_atomic' },
      { migrateOnStartup: false },
    );
    const error = await tenants.create('doomed').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TenantCreationError);
    expect((error as Error).message).toMatch(/003_broken\.sql \(line 2\)/);
    expect(await schemaExists('tenant_doomed')).toBe(false);
    expect((await admin.query('SELECT count(*)::int AS n FROM reg_atomic.tenants')).rows[0].n).toBe(
      0,
    );
    // The id is free again once the files are fixed.
    await write(migrations, { '003_broken.sql': 'CREATE TABLE {{tables.broken}} (id int);' });
    expect((await tenants.create('doomed')).status).toBe('active');
  });

  it('refuses to create a tenant over an existing schema, and leaves its data alone', async () => {
    const migrations = await folder(TENANT_FILES);
    const { tenants } = await boot({ migrations, registrySchema: 'reg_existing' });
    await admin.query(
      'CREATE SCHEMA tenant_legacy; CREATE TABLE tenant_legacy.projects (keep text)',
    );
    await admin.query("INSERT INTO tenant_legacy.projects VALUES ('precious')");
    const error = await tenants.create('legacy').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TenantCreationError);
    expect((error as Error).message).toMatch(
      /schema "tenant_legacy" already exists and was left untouched/,
    );
    expect((await admin.query('SELECT keep FROM tenant_legacy.projects')).rows).toEqual([
      { keep: 'precious' },
    ]);
    expect(await tenants.get('legacy')).toBeNull();
  });

  it('gives jobs a tenant through db(), run() and forEach()', async () => {
    const migrations = await folder(TENANT_FILES);
    const { app, tenants } = await boot({ migrations, registrySchema: 'reg_jobs' });
    for (const id of ['t1', 't2', 't3']) {
      await tenants.create(id);
      await (
        await tenants.db(id)
      ).execute('INSERT INTO {{tables.projects}} (name) VALUES ($1)', [`${id}-project`]);
    }
    await tenants.suspend('t3');
    const projects = app.get(ProjectsService);
    await expect(projects.names()).rejects.toBeInstanceOf(TenantContextMissingError);
    expect(await tenants.run('t2', () => projects.names())).toEqual([{ name: 't2-project' }]);

    const seen: string[] = [];
    await tenants.forEach(async (db, tenant) => {
      const names = await projects.names(); // the ambient tenant
      expect(names).toEqual([{ name: `${tenant.id}-project` }]);
      expect(db.schema).toBe(`tenant_${tenant.id}`);
      seen.push(tenant.id);
    });
    expect(seen.sort()).toEqual(['t1', 't2']);

    // Transactions through the proxy stay on one connection.
    await tenants.run('t1', () =>
      projects.db.transaction(async (tx) => {
        const a = await tx.fetchValue('SELECT pg_backend_pid()');
        await tx.execute("INSERT INTO {{tables.projects}} (name) VALUES ('in-tx')");
        expect(await tx.fetchValue('SELECT pg_backend_pid()')).toBe(a);
      }),
    );
    expect((await tenants.run('t1', () => projects.names())).map((r) => r.name)).toContain('in-tx');
  });

  it('migrates 200 tenants in parallel, reports a failing one, and a no-op run touches no schema', async () => {
    const migrations = await folder(TENANT_FILES);
    const { tenants, app } = await boot({
      migrations,
      registrySchema: 'reg_fleet',
      migrationConcurrency: 4,
      // Registry heartbeats use the pool too; keep them out of the connection count below.
      maxStalenessMs: 600_000,
    });
    const ids = Array.from({ length: 200 }, (_, i) => `f${String(i).padStart(3, '0')}`);
    // Register quickly with the first file only, as if they were created before 002 existed.
    const pool = app.get<pg.Pool>('DatabaseModule:Pool');
    await pool.query(
      `INSERT INTO reg_fleet.tenants (id, schema_name, status) SELECT id, 'tenant_' || id, 'active' FROM unnest($1::text[]) AS id`,
      [ids],
    );
    // Their schemas exist (migrations never create a tenant's schema), still empty.
    await admin.query(ids.map((id) => `CREATE SCHEMA tenant_${id};`).join('\n'));
    // One tenant has a table that collides with migration 002.
    await admin.query('CREATE TABLE tenant_f013.tasks (x int)');

    const progress: number[] = [];
    const summary = await tenants.migrateAll({ onProgress: (p) => progress.push(p.done) });
    expect(summary.failed).toEqual([
      { tenantId: 'f013', error: expect.stringMatching(/002_tasks\.sql.*"tasks" already exists/) },
    ]);
    expect(summary.applied).toHaveLength(199);
    expect(summary.applied[0].files).toEqual(['001_projects.sql', '002_tasks.sql']);
    expect(progress).toHaveLength(200);
    expect(Math.max(...progress)).toBe(200);

    const fleet = await tenants.migrationStatus();
    expect(fleet.find((t) => t.tenantId === 'f013')).toMatchObject({
      version: 0,
      pending: 2,
      lastError: expect.stringContaining('already exists'),
    });
    expect(fleet.find((t) => t.tenantId === 'f000')).toMatchObject({
      version: 2,
      pending: 0,
      changed: false,
      lastError: null,
    });

    // Fix the broken tenant; a re-run retries only it.
    await admin.query('DROP TABLE tenant_f013.tasks');
    const retry = await tenants.migrateAll();
    expect(retry.applied.map((a) => a.tenantId)).toEqual(['f013']);
    expect(retry.skipped).toBe(199);

    // Record what a no-op run sends: one read of the registry and nothing else. The registry's
    // own re-read of f013 (announced by the retry's NOTIFY) may land in this window, so the check
    // allows reads of single rows, and is on the statements rather than on a connection count.
    const sent = recordStatements(pool);
    const noop = await tenants.migrateAll();
    sent.stop();
    expect(noop).toMatchObject({ applied: [], skipped: 200, failed: [] });
    // In any order: the re-read can also come before migrateAll's own read.
    const fleetReads = sent.texts.filter(
      (sql) => sql !== 'SELECT * FROM "reg_fleet"."tenants" WHERE id = $1',
    );
    expect(fleetReads).toEqual([
      expect.stringMatching(/^SELECT \* FROM "reg_fleet"\."tenants" WHERE \(\$1::text\[\] IS NULL/),
    ]);
  }, 180_000); // 200 tenants' migrations: slow on a small, busy machine

  it('refuses a forEach or migrateAll concurrency that would visit nothing', async () => {
    const { tenants } = await boot({ registrySchema: 'reg_conc' });
    await tenants.create('c1');
    const visited: string[] = [];
    for (const concurrency of [0, -1, NaN, 1.5]) {
      await expect(
        tenants.forEach((_db, t) => void visited.push(t.id), { concurrency }),
      ).rejects.toThrow(/forEach concurrency must be a positive integer/);
      await expect(tenants.migrateAll({ concurrency })).rejects.toThrow(
        /migrateAll concurrency must be a positive integer/,
      );
    }
    expect(visited).toEqual([]);
    await tenants.forEach((_db, t) => void visited.push(t.id), { concurrency: 2 });
    expect(visited).toEqual(['c1']);
  });

  it('reports edited tenant migrations in the fleet view', async () => {
    const migrations = await folder(TENANT_FILES);
    const { tenants } = await boot({ migrations, registrySchema: 'reg_edit' });
    await tenants.create('e1');
    await write(migrations, {
      '001_projects.sql': TENANT_FILES['001_projects.sql'] + ' -- edited',
    });
    expect((await tenants.migrationStatus())[0]).toMatchObject({ tenantId: 'e1', changed: true });
    const summary = await tenants.migrateAll();
    expect(summary.failed[0].error).toMatch(/checksum mismatch/);
  });

  it('reports applied tenant files deleted from the folder, never lowering the version', async () => {
    const migrations = await folder(TENANT_FILES);
    const { tenants, app } = await boot({ migrations, registrySchema: 'reg_missing' });
    await tenants.create('m1');
    await rm(join(migrations, '002_tasks.sql'));
    expect((await tenants.migrationStatus())[0]).toMatchObject({
      tenantId: 'm1',
      version: 2,
      pending: 0,
      missing: 1,
    });
    await tenants.migrateAll();
    expect((await tenants.migrationStatus())[0]).toMatchObject({ version: 2, missing: 1 });
    await app.close();
    await expect(
      (async () => {
        const strict = await Test.createTestingModule({
          imports: [
            DatabaseModule.forRoot({
              connection: database.current.url,
              missingMigrations: 'fail',
              tenancy: { interceptor: false, migrations, registrySchema: 'reg_missing' },
            }),
          ],
        }).compile();
        apps.push(strict);
        await strict.init();
      })(),
    ).rejects.toThrow(/m1 \(1 applied migration file\(s\) missing/);
  });

  it('fails start-up when tenant migrations fail, after migrating the others', async () => {
    const migrations = await folder(TENANT_FILES);
    const first = await boot({ migrations, registrySchema: 'reg_boot' });
    await first.tenants.create('ok1');
    await first.tenants.create('bad1');
    await first.app.close();
    await write(migrations, {
      '003_more.sql': 'ALTER TABLE {{tables.projects}} ADD COLUMN note text;',
    });
    await admin.query('ALTER TABLE tenant_bad1.projects ADD COLUMN note text');
    await expect(boot({ migrations, registrySchema: 'reg_boot' })).rejects.toThrow(
      /Migrations failed for 1 tenant\(s\): bad1/,
    );
    const cols = await admin.query(
      "SELECT 1 FROM information_schema.columns WHERE table_schema = 'tenant_ok1' AND column_name = 'note'",
    );
    expect(cols.rowCount).toBe(1);
  });
});

/** Records the text of every statement sent through `pool` until `stop()`. */
function recordStatements(pool: pg.Pool) {
  const texts: string[] = [];
  const wrapped = new WeakSet<pg.PoolClient>();
  let recording = true;
  const onAcquire = (client: pg.PoolClient) => {
    if (wrapped.has(client)) return;
    wrapped.add(client);
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as { query: unknown }).query = (...args: unknown[]) => {
      const first = args[0] as string | { text?: string };
      if (recording) texts.push(typeof first === 'string' ? first : (first.text ?? ''));
      return query(...args);
    };
  };
  pool.on('acquire', onAcquire);
  return {
    texts,
    stop() {
      recording = false;
      pool.off('acquire', onAcquire);
    },
  };
}
