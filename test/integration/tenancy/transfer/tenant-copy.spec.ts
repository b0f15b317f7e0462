import { Test, type TestingModule } from '@nestjs/testing';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { openTenancy } from '../../../../lib/cli/tenancy-cli.js';
import {
  DatabaseModule,
  TenantAlreadyExistsError,
  TenantNotFoundError,
  TenantService,
} from '../../../../lib/index.js';
import {
  TenantCloneError,
  TenantImportError,
  TenantRegistry,
  type TenantExportManifest,
} from '../../../../lib/tenancy/index.js';
import { createTestDatabase, type TestDatabase } from '../../../../lib/testing/index.js';
import { definitionFingerprint } from '../../../../lib/catalog/fingerprints.js';
import { adminPool, useTestDatabase } from '../../../support/database.js';
import { useMigrationFolders } from '../../../support/migrations.js';
import { jest } from '@jest/globals';

jest.setTimeout(60_000);

/** Migrations using an enum, serial, identity, generated column, FKs (one to itself), a check,
 * an index, a comment, functions naming the schema, a trigger, a view and a seed row. */
const FILES = {
  '001_tables.sql': `
CREATE TYPE {{schema}}.mood AS ENUM ('ok', 'sad');
CREATE TABLE {{tables.projects}} (
  id serial PRIMARY KEY,
  name text NOT NULL CHECK (name <> ''),
  mood {{schema}}.mood NOT NULL DEFAULT 'ok',
  slug text GENERATED ALWAYS AS (lower(name)) STORED,
  updated_at timestamptz
);
CREATE TABLE {{tables.tasks}} (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id int NOT NULL REFERENCES {{tables.projects}} (id),
  parent_id bigint REFERENCES {{tables.tasks}} (id),
  title text NOT NULL
);
CREATE INDEX tasks_project ON {{tables.tasks}} (project_id);
COMMENT ON TABLE {{tables.tasks}} IS 'work items';`,
  '002_logic.sql': `
CREATE FUNCTION {{schema}}.task_count(p int) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN RETURN (SELECT count(*) FROM {{tables.tasks}} WHERE project_id = p); END $$;
CREATE FUNCTION {{schema}}.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$;
CREATE TRIGGER projects_touch BEFORE INSERT OR UPDATE ON {{tables.projects}}
  FOR EACH ROW EXECUTE FUNCTION {{schema}}.touch();
CREATE VIEW {{schema}}.project_sizes AS
  SELECT p.id, p.name, {{schema}}.task_count(p.id) AS tasks FROM {{tables.projects}} p;
INSERT INTO {{tables.projects}} (name) VALUES ('Seed');`,
};

const TABLES = ['projects', 'tasks', 'schema_migrations'];

describe('tenant clone, rename, export and import', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;
  let migrations: string;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    admin = adminPool(database.current.url, 4);
    migrations = await folder(FILES);
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  afterAll(() => admin.end());

  async function service(url: string, registrySchema: string, dir = migrations) {
    const tenancy = await openTenancy({
      connection: url,
      tenancy: { migrations: dir, registrySchema, schemaPrefix: `${registrySchema}_` },
    });
    cleanups.push(() => tenancy.end());
    return tenancy.service;
  }

  /** Every row of every table, as JSON, in id order. */
  async function rows(db: pg.Pool, schema: string): Promise<Record<string, unknown[]>> {
    const out: Record<string, unknown[]> = {};
    for (const table of TABLES) {
      const order = table === 'schema_migrations' ? 'version' : 'id';
      const { rows: r } = await db.query<{ row: unknown }>(
        `SELECT to_jsonb(t) - 'applied_at' AS row FROM "${schema}"."${table}" t ORDER BY ${order}`,
      );
      out[table] = r.map((x) => x.row);
    }
    return out;
  }

  async function fingerprint(db: pg.Pool, schema: string): Promise<string[]> {
    const client = await db.connect();
    try {
      return await definitionFingerprint(client, schema);
    } finally {
      client.release();
    }
  }

  /** Gives tenant `schema` some data: projects, tasks (one a child of another), a gap in ids. */
  async function fill(schema: string) {
    await admin.query(
      `INSERT INTO "${schema}".projects (name, mood) VALUES ('A', 'sad'), ('B', 'ok')`,
    );
    await admin.query(
      `INSERT INTO "${schema}".tasks (project_id, title) SELECT id, 'task of ' || name FROM "${schema}".projects`,
    );
    await admin.query(
      `INSERT INTO "${schema}".tasks (project_id, parent_id, title) VALUES (2, 1, 'child')`,
    );
    await admin.query(`INSERT INTO "${schema}".projects (name) VALUES ('temp')`);
    await admin.query(`DELETE FROM "${schema}".projects WHERE name = 'temp'`);
  }

  const schemaExists = async (db: pg.Pool, schema: string) =>
    (await db.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])).rowCount === 1;

  it('clones schema and data exactly, leaving the source unchanged', async () => {
    const tenants = await service(database.current.url, 'cl');
    await tenants.create('alpha', { metadata: { plan: 'pro' } });
    await fill('cl_alpha');
    const before = await rows(admin, 'cl_alpha');
    const progress: string[] = [];
    const beta = await tenants.clone('alpha', 'beta', {
      onProgress: (p) => progress.push(`${p.table}:${p.rows}`),
    });
    expect(beta).toMatchObject({
      id: 'beta',
      schema: 'cl_beta',
      status: 'active',
      metadata: { plan: 'pro' },
      migratedVersion: 2,
    });
    expect(progress.sort()).toEqual(['projects:3', 'schema_migrations:2', 'tasks:4']);
    // Rows (migration history included), catalog and registry: equal; the source unchanged.
    expect(await rows(admin, 'cl_beta')).toEqual(before);
    expect(await rows(admin, 'cl_alpha')).toEqual(before);
    expect(await fingerprint(admin, 'cl_beta')).toEqual(await fingerprint(admin, 'cl_alpha'));
    const fks = await admin.query<{ target: string }>(
      `SELECT confrelid::regclass::text AS target FROM pg_constraint
        WHERE contype = 'f' AND connamespace = 'cl_beta'::regnamespace ORDER BY 1`,
    );
    expect(fks.rows.map((r) => r.target)).toEqual(['cl_beta.projects', 'cl_beta.tasks']);
    // Sequences carry on where the source's are; functions and the trigger use the new schema.
    const next = await admin.query<{ id: number; updated_at: Date | null }>(
      `INSERT INTO cl_beta.projects (name) VALUES ('New') RETURNING id, updated_at`,
    );
    expect(next.rows[0].id).toBe(5);
    expect(next.rows[0].updated_at).not.toBeNull();
    await admin.query(`INSERT INTO cl_beta.tasks (project_id, title) VALUES (5, 'x')`);
    const sizes = await admin.query<{ tasks: string }>(
      `SELECT tasks FROM cl_beta.project_sizes WHERE id = 5`,
    );
    expect(sizes.rows[0].tasks).toBe('1');
    expect(await rows(admin, 'cl_alpha')).toEqual(before);

    await expect(tenants.clone('alpha', 'beta')).rejects.toBeInstanceOf(TenantAlreadyExistsError);
    await expect(tenants.clone('nobody', 'gamma')).rejects.toBeInstanceOf(TenantNotFoundError);
  });

  it('refuses a source changed outside its migrations, and leaves nothing', async () => {
    const tenants = await service(database.current.url, 'cd');
    await tenants.create('alpha');
    await admin.query('ALTER TABLE cd_alpha.projects ADD COLUMN by_hand int');
    await expect(tenants.clone('alpha', 'beta')).rejects.toThrow(TenantCloneError);
    await expect(tenants.clone('alpha', 'beta')).rejects.toThrow(/by_hand/);
    expect(await tenants.get('beta')).toBeNull();
    expect(await schemaExists(admin, 'cd_beta')).toBe(false);
  });

  it('copies one snapshot: writes committed during the clone are never half-seen', async () => {
    const tenants = await service(database.current.url, 'cw');
    await tenants.create('alpha');
    const writer = new pg.Client({ connectionString: database.current.url });
    await writer.connect();
    cleanups.push(() => writer.end());
    let stop = false;
    let pairs = 0;
    // Each transaction writes a project and its task: a clone must hold both or neither.
    const writing = (async () => {
      while (!stop) {
        await writer.query('BEGIN');
        const p = await writer.query<{ id: number }>(
          `INSERT INTO cw_alpha.projects (name) VALUES ('p') RETURNING id`,
        );
        await writer.query(`INSERT INTO cw_alpha.tasks (project_id, title) VALUES ($1, 't')`, [
          p.rows[0].id,
        ]);
        await writer.query('COMMIT');
        pairs++;
      }
    })();
    while (pairs < 20) await new Promise((resolve) => setImmediate(resolve));
    let clones;
    try {
      clones = await Promise.all(['b1', 'b2', 'b3'].map((id) => tenants.clone('alpha', id)));
    } finally {
      stop = true;
      await writing;
    }
    for (const clone of clones) {
      const { rows: r } = await admin.query<{ projects: number; tasks: number; orphans: number }>(
        `SELECT (SELECT count(*)::int FROM "${clone.schema}".projects WHERE name = 'p') AS projects,
                (SELECT count(*)::int FROM "${clone.schema}".tasks) AS tasks,
                (SELECT count(*)::int FROM "${clone.schema}".projects p WHERE name = 'p'
                   AND NOT EXISTS (SELECT 1 FROM "${clone.schema}".tasks t WHERE t.project_id = p.id)) AS orphans`,
      );
      expect(r[0].orphans).toBe(0);
      expect(r[0].projects).toBe(r[0].tasks);
      expect(r[0].projects).toBeGreaterThanOrEqual(20);
    }
  });

  it('renames: every instance stops routing the old id within maxStalenessMs and serves the new', async () => {
    const BOUND_MS = 1_000;
    const apps: TestingModule[] = [];
    cleanups.push(() => Promise.all(apps.map((a) => a.close())));
    const boot = async () => {
      const app = await Test.createTestingModule({
        imports: [
          DatabaseModule.forRoot({
            connection: database.current.url,
            pool: { max: 3 },
            tenancy: {
              interceptor: false,
              migrations,
              registrySchema: 'rn',
              schemaPrefix: 'rn_',
              maxStalenessMs: BOUND_MS,
            },
          }),
        ],
      }).compile();
      apps.push(app);
      await app.init();
      await app.get(TenantRegistry).whenSynced();
      return { tenants: app.get(TenantService), registry: app.get(TenantRegistry) };
    };
    const a = await boot();
    const b = await boot();
    await a.tenants.create('old');
    await admin.query(`INSERT INTO rn_old.projects (name) VALUES ('kept')`);
    // b has served the old id. (Read it: whenSynced() resolves at once while b is synced, which
    // says nothing of a change committed a moment ago on a, still within the bound.)
    await b.registry.refresh('old');
    expect((await b.registry.require('old')).info.schema).toBe('rn_old');

    const renamed = await a.tenants.rename('old', 'new');
    const at = performance.now();
    expect(renamed).toMatchObject({ id: 'new', schema: 'rn_new', status: 'active' });
    // The renaming instance answers at once.
    await expect(a.registry.require('old')).rejects.toBeInstanceOf(TenantNotFoundError);
    // Another instance: within the bound, then for good.
    const answer = async (id: string) =>
      b.registry.require(id).then(
        () => 'served',
        (err: unknown) => (err instanceof TenantNotFoundError ? '404' : String(err)),
      );
    for (;;) {
      const startedAt = performance.now();
      const [oldAnswer, newAnswer] = [await answer('old'), await answer('new')];
      if (oldAnswer === '404' && newAnswer === 'served') break;
      expect(startedAt - at).toBeLessThan(BOUND_MS);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(await answer('old')).toBe('404');
    const names = await b.tenants.run('new', async () =>
      (await b.tenants.db('new')).fetchAll<{ name: string }>(
        'SELECT name FROM {{tables.projects}} ORDER BY id',
      ),
    );
    expect(names.map((n) => n.name)).toEqual(['Seed', 'kept']);
    // The function body named the old schema: rewritten.
    const count = await admin.query<{ n: string }>(`SELECT rn_new.task_count(1) AS n`);
    expect(count.rows[0].n).toBe('0');
    expect(await schemaExists(admin, 'rn_old')).toBe(false);
    await expect(a.tenants.rename('new', 'new')).rejects.toBeInstanceOf(TenantAlreadyExistsError);
    await expect(a.tenants.rename('old', 'other')).rejects.toBeInstanceOf(TenantNotFoundError);
  });

  describe('export and import into another database', () => {
    let second: TestDatabase;
    let secondAdmin: pg.Pool;
    let exportDir: string;

    beforeAll(async () => {
      second = await createTestDatabase();
      secondAdmin = adminPool(second.url);
      exportDir = await mkdtemp(join(tmpdir(), 'pgt-export-'));
    });
    afterAll(async () => {
      await secondAdmin.end();
      await second.drop();
      await rm(exportDir, { recursive: true, force: true });
    });

    it('round-trips rows, catalog, sequences and history, checked by counts and checksums', async () => {
      const source = await service(database.current.url, 'ex');
      await source.create('alpha');
      await fill('ex_alpha');
      const path = join(exportDir, 'alpha');
      const written = await source.export('alpha', path);
      expect(written).toMatchObject({ tables: 3, rows: 3 + 4 + 2 });
      const manifest = JSON.parse(
        await readFile(join(path, 'manifest.json'), 'utf8'),
      ) as TenantExportManifest;
      expect(manifest).toMatchObject({
        format: 'nestjs-pg-tenancy/tenant-export',
        formatVersion: 1,
        tenant: { id: 'alpha' },
      });
      expect(manifest.migrations.map((m) => m.name)).toEqual(['001_tables.sql', '002_logic.sql']);
      await expect(source.export('alpha', path)).rejects.toThrow(/already exists/);

      const target = await service(second.url, 'ex');
      const imported = await target.import(path);
      expect(imported).toMatchObject({ id: 'alpha', status: 'active', migratedVersion: 2 });
      expect(await rows(secondAdmin, 'ex_alpha')).toEqual(await rows(admin, 'ex_alpha'));
      expect(await fingerprint(secondAdmin, 'ex_alpha')).toEqual(
        await fingerprint(admin, 'ex_alpha'),
      );
      const next = await secondAdmin.query<{ id: number }>(
        `INSERT INTO ex_alpha.projects (name) VALUES ('New') RETURNING id`,
      );
      expect(next.rows[0].id).toBe(5);
      // The same export under another id, beside it.
      await expect(target.import(path)).rejects.toBeInstanceOf(TenantAlreadyExistsError);
      const copy = await target.import(path, { id: 'alpha2' });
      expect(copy.schema).toBe('ex_alpha2');
      expect((await rows(secondAdmin, 'ex_alpha2')).tasks).toHaveLength(4);
    });

    it('refuses a corrupt file or mismatched migrations, and leaves nothing', async () => {
      const source = await service(database.current.url, 'bad');
      await source.create('alpha');
      await fill('bad_alpha');
      const path = join(exportDir, 'bad');
      await source.export('alpha', path);
      const target = await service(second.url, 'bad');
      const leftNothing = async (id: string) => {
        expect(await target.get(id)).toBeNull();
        expect(await schemaExists(secondAdmin, `bad_${id}`)).toBe(false);
      };

      // One flipped byte in a data file.
      const corrupt = join(exportDir, 'corrupt');
      await cp(path, corrupt, { recursive: true });
      const manifest = JSON.parse(
        await readFile(join(corrupt, 'manifest.json'), 'utf8'),
      ) as TenantExportManifest;
      const victim = join(corrupt, manifest.tables[0].file);
      const bytes = await readFile(victim);
      bytes[bytes.length >> 1] ^= 0xff;
      await writeFile(victim, bytes);
      await expect(target.import(corrupt, { id: 'c1' })).rejects.toMatchObject({
        constructor: TenantImportError,
        reason: 'corrupt',
      });
      await leftNothing('c1');

      // A row count that the data does not match: refused mid-load, rolled back.
      const miscounted = join(exportDir, 'miscounted');
      await cp(path, miscounted, { recursive: true });
      const m2 = JSON.parse(await readFile(join(miscounted, 'manifest.json'), 'utf8')) as {
        tables: { rows: number }[];
      };
      m2.tables[m2.tables.length - 1].rows += 1;
      await writeFile(join(miscounted, 'manifest.json'), JSON.stringify(m2));
      await expect(target.import(miscounted, { id: 'c2' })).rejects.toMatchObject({
        reason: 'corrupt',
      });
      await leftNothing('c2');

      // Migrations that differ, or an application older than the export.
      const edited = await folder({
        ...FILES,
        '002_logic.sql': `${FILES['002_logic.sql']}\n-- edited`,
      });
      const differs = await service(second.url, 'bad', edited);
      await expect(differs.import(path, { id: 'c3' })).rejects.toMatchObject({
        reason: 'migrations',
      });
      const older = await folder({ '001_tables.sql': FILES['001_tables.sql'] });
      const behind = await service(second.url, 'bad', older);
      await expect(behind.import(path, { id: 'c4' })).rejects.toThrow(/newer than/);
      await leftNothing('c3');
      await leftNothing('c4');

      // Not an export at all.
      await expect(target.import(exportDir)).rejects.toMatchObject({ reason: 'format' });
    });
  });
});
