import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { Test, type TestingModule } from '@nestjs/testing';
import pg from 'pg';
import {
  DatabaseModule,
  TenantAlreadyExistsError,
  TenantNotFoundError,
  TenantService,
} from '../../../lib/index.js';
import { adminPool, useTestDatabase } from '../../support/database.js';
import { useMigrationFolders, write } from '../../support/migrations.js';
import { jest } from '@jest/globals';

const CHILD = resolve('test/fixtures/lifecycle-child.mjs');
const PROJECTS = 'CREATE TABLE {{tables.projects}} (id serial PRIMARY KEY);';

// These steps start processes and wait on other sessions; a busy machine outlasts Jest's default.
jest.setTimeout(120_000);

describe('crashes: a process killed midway leaves nothing, or a row that list() shows and repair finishes', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;
  const apps: TestingModule[] = [];
  const children: ChildProcess[] = [];

  async function boot(migrations: string, registrySchema: string) {
    const app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          pool: { max: 4 },
          migrateOnStartup: false,
          tenancy: { interceptor: false, migrations, registrySchema },
        }),
      ],
    }).compile();
    apps.push(app);
    await app.init();
    return app.get(TenantService);
  }

  /** Starts the child and SIGKILLs it once `point` (a pg_stat_activity condition) holds. */
  async function killWhen(
    args: string[],
    env: Record<string, string>,
    point: string,
  ): Promise<void> {
    const child = spawn(process.execPath, [CHILD, ...args], {
      env: { ...process.env, DATABASE_URL: database.current.url, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const exited = new Promise<void>((done) => child.once('exit', () => done()));
    for (;;) {
      if (child.exitCode !== null) throw new Error(`The child exited early:\n${output}`);
      // This database only: other test files on the server have drops waiting on locks too.
      const { rowCount } = await admin.query(
        `SELECT 1 FROM pg_stat_activity
          WHERE pid <> pg_backend_pid() AND datname = current_database() AND ${point}`,
      );
      if (rowCount) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGKILL');
    await exited;
    // The server notices a vanished client only when it next talks to it: end its sessions.
    await admin.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE pid <> pg_backend_pid() AND datname = current_database()
          AND (query LIKE '%pg_sleep(60)%' OR application_name = 'nestjs-pg-tenancy:drop')`,
    );
  }

  const schemaExists = async (schema: string) =>
    (await admin.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])).rowCount === 1;

  beforeAll(() => {
    admin = adminPool(database.current.url, 4);
  });
  afterEach(async () => {
    for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
    await Promise.all(apps.splice(0).map((app) => app.close()));
  });
  afterAll(() => admin.end());

  it('killed during its transactional migrations, create leaves no row and no schema', async () => {
    const migrations = await folder({
      '001_projects.sql': PROJECTS,
      '002_slow.sql': 'SELECT pg_sleep(60);',
    });
    const tenants = await boot(migrations, 'crash_tx');
    await killWhen(
      ['create', 'half'],
      { MIGRATIONS: migrations, REGISTRY_SCHEMA: 'crash_tx' },
      "query LIKE '%pg_sleep(60)%'",
    );
    expect(await tenants.get('half')).toBeNull();
    expect(await schemaExists('tenant_half')).toBe(false);
    await write(migrations, { '002_slow.sql': 'SELECT 1;' });
    expect((await tenants.create('half')).status).toBe('active');
  });

  it('killed during a no-transaction file, create leaves a provisioning tenant that repair finishes', async () => {
    const migrations = await folder({
      '001_projects.sql': PROJECTS,
      '002_index.sql': '-- migrate:no-transaction\nSELECT pg_sleep(60);',
    });
    const tenants = await boot(migrations, 'crash_notx');
    await killWhen(
      ['create', 'partial'],
      { MIGRATIONS: migrations, REGISTRY_SCHEMA: 'crash_notx' },
      "query LIKE '%pg_sleep(60)%'",
    );
    expect((await tenants.list()).map((t) => [t.id, t.status])).toEqual([
      ['partial', 'provisioning'],
    ]);
    await expect(tenants.db('partial')).rejects.toBeInstanceOf(TenantNotFoundError);
    const again = await tenants.create('partial').catch((e: unknown) => e);
    expect(again).toBeInstanceOf(TenantAlreadyExistsError);
    expect((again as Error).message).toMatch(/still being created.*tenants repair partial/);

    await write(migrations, {
      '002_index.sql':
        '-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY projects_id ON {{tables.projects}} (id);',
    });
    expect(await tenants.repair('partial')).toMatchObject({
      before: 'provisioning',
      after: 'active',
      action: 'finished-create',
    });
    expect((await tenants.db('partial')).schema).toBe('tenant_partial');
    const history = await admin.query(
      'SELECT name FROM tenant_partial.schema_migrations ORDER BY version',
    );
    expect(history.rows.map((r) => r.name)).toEqual(['001_projects.sql', '002_index.sql']);
  });

  it('killed while waiting to drop the schema, drop leaves a dropping tenant that repair finishes', async () => {
    const migrations = await folder({ '001_projects.sql': PROJECTS });
    const tenants = await boot(migrations, 'crash_drop');
    await tenants.create('goner');
    const holder = await admin.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE tenant_goner.projects IN ACCESS SHARE MODE');
      await killWhen(
        ['drop', 'goner'],
        { MIGRATIONS: migrations, REGISTRY_SCHEMA: 'crash_drop' },
        "application_name = 'nestjs-pg-tenancy:drop' AND wait_event_type = 'Lock'",
      );
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      holder.release();
    }
    expect((await tenants.list()).map((t) => [t.id, t.status])).toEqual([['goner', 'dropping']]);
    await expect(tenants.db('goner')).rejects.toBeInstanceOf(TenantNotFoundError);
    expect(await tenants.repair('goner')).toMatchObject({ action: 'finished-drop', after: null });
    expect(await schemaExists('tenant_goner')).toBe(false);
    expect(await tenants.get('goner')).toBeNull();
  });
});
