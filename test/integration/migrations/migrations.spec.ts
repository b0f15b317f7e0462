import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ConsoleLogger, Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import pg from 'pg';
import { DatabaseModule } from '../../../lib/index.js';
import {
  MigrationChecksumError,
  MigrationFailedError,
  MigrationFilesMissingError,
  MigrationLockTimeoutError,
  MigrationRunner,
  MigrationTransactionControlError,
} from '../../../lib/migrations/index.js';
import { adminPool, useTestDatabase } from '../../support/database.js';
import { RecordingLogger } from '../../support/logs.js';
import { useMigrationFolders, write } from '../../support/migrations.js';

const BASE = {
  '001_create_orders.sql':
    'CREATE TABLE {{tables.orders}} (id serial PRIMARY KEY, item text NOT NULL);',
  '002_create_items.sql':
    'CREATE TABLE {{tables.items}} (\n  id serial PRIMARY KEY,\n  order_id int REFERENCES {{tables.orders}} (id)\n);',
  '003_seed.sql': "INSERT INTO {{tables.orders}} (item) VALUES ('first');",
};

describe('migrations', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;
  let runner: MigrationRunner;
  let logger: RecordingLogger;
  let schemaCounter = 0;
  const nextSchema = () => `mig_${++schemaCounter}`;

  const history = async (schema: string) =>
    (await admin.query(`SELECT version, name FROM "${schema}".schema_migrations ORDER BY version`))
      .rows;
  const tableExists = async (name: string) =>
    (await admin.query('SELECT to_regclass($1)::text AS t', [name])).rows[0].t !== null;

  /** Polls PostgreSQL until `sql` returns `expected` as `n` (a condition, not a sleep). */
  const until = async (sql: string, expected: number) => {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const n = (await admin.query(sql)).rows[0].n;
      if (n === expected) return;
      if (Date.now() > deadline) throw new Error(`${sql} stayed at ${n}, expected ${expected}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  beforeAll(() => {
    admin = adminPool(database.current.url);
  });
  beforeEach(() => {
    logger = new RecordingLogger();
    runner = new MigrationRunner({ connectionString: database.current.url }, { logger });
  });
  afterAll(() => admin.end());

  it('applies every file to a fresh schema and records version, checksum and duration', async () => {
    const schema = nextSchema();
    const dir = await folder(BASE);
    const result = await runner.migrate(schema, dir);
    expect(result.applied.map((a) => a.name)).toEqual(Object.keys(BASE));
    const rows = (
      await admin.query(
        `SELECT version, name, checksum, applied_at, duration_ms FROM "${schema}".schema_migrations ORDER BY version`,
      )
    ).rows;
    expect(rows.map((r) => r.version)).toEqual([1, 2, 3]);
    expect(rows[0].checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(rows.every((r) => r.applied_at instanceof Date && r.duration_ms >= 0)).toBe(true);
    expect(await tableExists(`${schema}.items`)).toBe(true);
    expect(logger.logs).toEqual(
      Object.keys(BASE).map((name) =>
        expect.stringMatching(new RegExp(`^Applied ${schema}/${name} in \\d+ ms$`)),
      ),
    );
  });

  it('applies nothing on a re-run, and only a new file afterwards', async () => {
    const schema = nextSchema();
    const dir = await folder(BASE);
    await runner.migrate(schema, dir);
    expect((await runner.migrate(schema, dir)).applied).toEqual([]);
    await write(dir, { '004_add_note.sql': 'ALTER TABLE {{tables.orders}} ADD COLUMN note text;' });
    expect((await runner.migrate(schema, dir)).applied.map((a) => a.name)).toEqual([
      '004_add_note.sql',
    ]);
    expect(await admin.query(`SELECT count(*)::int AS n FROM "${schema}".orders`)).toMatchObject({
      rows: [{ n: 1 }],
    });
  });

  it('refuses to run when an applied file was edited, and applies nothing else', async () => {
    const schema = nextSchema();
    const dir = await folder(BASE);
    await runner.migrate(schema, dir);
    await write(dir, {
      '002_create_items.sql': BASE['002_create_items.sql'] + '\n-- edited',
      '004_more.sql': 'CREATE TABLE {{tables.more}} (id int);',
    });
    const error = await runner.migrate(schema, dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationChecksumError);
    expect(error).toMatchObject({ schema, file: '002_create_items.sql' });
    expect((error as Error).message).toMatch(/checksum mismatch/);
    expect(await tableExists(`${schema}.more`)).toBe(false);
    const status = await runner.status(schema, dir);
    expect(status.changed).toEqual(['002_create_items.sql']);
  });

  it('rolls back a failing file, reports file and line, and stops there', async () => {
    const schema = nextSchema();
    const dir = await folder({
      '001_ok.sql': 'CREATE TABLE {{tables.a}} (id int);',
      '002_broken.sql':
        'CREATE TABLE {{tables.b}} (id int);\nINSERT INTO {{tables.b}} VALUES (1);\nSELECT no_such_column FROM {{tables.b}};\n',
      '003_never.sql': 'CREATE TABLE {{tables.c}} (id int);',
    });
    const error = await runner.migrate(schema, dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationFailedError);
    expect(error).toMatchObject({ schema, file: '002_broken.sql', line: 3 });
    expect((error as Error).message).toMatch(
      new RegExp(
        `Migration 002_broken.sql \\(line 3\\) failed in schema "${schema}": column "no_such_column" does not exist`,
      ),
    );
    expect(await history(schema)).toEqual([{ version: 1, name: '001_ok.sql' }]);
    expect(await tableExists(`${schema}.b`)).toBe(false);
    expect(await tableExists(`${schema}.c`)).toBe(false);
  });

  it('refuses a file that commits part-way before running any file, so nothing half-applies', async () => {
    const schema = nextSchema();
    const dir = await folder({
      '001_ok.sql': 'CREATE TABLE {{tables.a}} (id int);',
      '002_commits.sql':
        'CREATE TABLE {{tables.b}} (id int);\nCOMMIT;\nSELECT no_such_column FROM {{tables.b}};\n',
    });
    const error = await runner.migrate(schema, dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationTransactionControlError);
    expect(error).toMatchObject({ file: '002_commits.sql', line: 2, statement: 'COMMIT' });
    expect(await tableExists(`${schema}.a`)).toBe(false);
    expect(await tableExists(`${schema}.b`)).toBe(false);
  });

  it("records the history row in the file's own transaction: a failing record rolls the file back", async () => {
    const schema = nextSchema();
    const dir = await folder({ '001_ok.sql': 'CREATE TABLE {{tables.a}} (id int);' });
    await runner.migrate(schema, dir);
    // A trigger that refuses version 2's history row: the file itself succeeds, only its record fails.
    await admin.query(`
      CREATE FUNCTION "${schema}".refuse_v2() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.version = 2 THEN RAISE EXCEPTION 'history row refused'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER refuse_v2 BEFORE INSERT ON "${schema}".schema_migrations
        FOR EACH ROW EXECUTE FUNCTION "${schema}".refuse_v2();`);
    await write(dir, {
      '002_data.sql':
        'CREATE TABLE {{tables.b}} (id int);\nINSERT INTO {{tables.a}} VALUES (1);\nALTER TABLE {{tables.a}} ADD COLUMN note text;',
    });
    const error = await runner.migrate(schema, dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationFailedError);
    expect((error as Error).message).toMatch(/002_data\.sql.*history row refused/);
    expect(await history(schema)).toEqual([{ version: 1, name: '001_ok.sql' }]);
    expect(await tableExists(`${schema}.b`)).toBe(false);
    expect((await admin.query(`SELECT count(*)::int AS n FROM "${schema}".a`)).rows[0].n).toBe(0);
    const columns = await admin.query(
      "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'a'",
      [schema],
    );
    expect(columns.rows.map((r) => r.column_name)).toEqual(['id']);

    // With the trigger gone the same file applies cleanly: nothing of it was left behind.
    await admin.query(`DROP TRIGGER refuse_v2 ON "${schema}".schema_migrations`);
    expect((await runner.migrate(schema, dir)).applied.map((a) => a.name)).toEqual([
      '002_data.sql',
    ]);
  });

  it("migrates another schema while one schema's migration is held", async () => {
    const [held, free] = [nextSchema(), nextSchema()];
    // The held schema's file waits for an advisory lock the test owns, inside its transaction
    // (so under that schema's migration lock).
    const slow = await folder({
      '001_wait.sql':
        'CREATE TABLE {{tables.a}} (id int);\nSELECT pg_advisory_xact_lock_shared(90210);',
    });
    const quick = await folder(BASE);
    const gate = await admin.connect();
    let heldRun: Promise<unknown> | undefined;
    try {
      await gate.query('SELECT pg_advisory_lock(90210)');
      heldRun = runner.migrate(held, slow);
      heldRun.catch(() => undefined);
      await until(
        "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = 90210 AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        1,
      );
      // Either the free schema finishes, or its migrator is seen queued behind another advisory
      // lock (the held schema's): a condition in PostgreSQL, not a timeout.
      let outcome: 'running' | 'finished' | 'failed' = 'running';
      const freeRun = runner.migrate(free, quick).then(
        () => (outcome = 'finished'),
        () => (outcome = 'failed'),
      );
      const deadline = Date.now() + 60_000;
      while (outcome === 'running') {
        const queued = await admin.query(
          "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid <> 90210 AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        );
        if (queued.rows[0].n > 0) throw new Error('the free schema waited for the held schema');
        if (Date.now() > deadline) throw new Error('the free schema did not finish');
        await new Promise((r) => setTimeout(r, 20));
      }
      await freeRun;
      expect(outcome).toBe('finished');
      expect(await history(free)).toHaveLength(3);
      expect(await tableExists(`${held}.a`)).toBe(false); // still uncommitted
    } finally {
      await gate.query('SELECT pg_advisory_unlock(90210)').catch(() => undefined);
      gate.release();
    }
    await heldRun;
    expect(await history(held)).toEqual([{ version: 1, name: '001_wait.sql' }]);
  });

  it('runs a -- migrate:no-transaction file outside a transaction (CREATE INDEX CONCURRENTLY)', async () => {
    const schema = nextSchema();
    const dir = await folder({
      '001_table.sql': 'CREATE TABLE {{tables.events}} (id int, kind text);',
      '002_index.sql':
        '-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS events_kind ON {{tables.events}} (kind);\n',
    });
    await runner.migrate(schema, dir);
    const index = await admin.query(
      `SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)`,
      [`${schema}.events_kind`],
    );
    expect(index.rows).toEqual([{ indisvalid: true }]);
    expect(await history(schema)).toHaveLength(2);
  });

  it('fails CREATE INDEX CONCURRENTLY without the marker, naming the file', async () => {
    const schema = nextSchema();
    const dir = await folder({
      '001_table.sql': 'CREATE TABLE {{tables.events}} (id int);',
      '002_index.sql': 'CREATE INDEX CONCURRENTLY events_id ON {{tables.events}} (id);',
    });
    await expect(runner.migrate(schema, dir)).rejects.toThrow(
      /002_index\.sql.*cannot run inside a transaction block/,
    );
  });

  it('reports applied files deleted from the folder, and can refuse to migrate past them', async () => {
    const schema = nextSchema();
    const dir = await folder(BASE);
    await runner.migrate(schema, dir);
    await rm(join(dir, '003_seed.sql'));
    const status = await runner.status(schema, dir);
    expect(status.missing).toEqual(['003_seed.sql']);
    expect(status.pending).toEqual([]);
    const result = await runner.migrate(schema, dir);
    expect(result).toMatchObject({ applied: [], missing: ['003_seed.sql'] });
    const strict = new MigrationRunner(
      { connectionString: database.current.url },
      { logger, failOnMissingFiles: true },
    );
    const error = await strict.migrate(schema, dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationFilesMissingError);
    expect(error).toMatchObject({ schema, files: ['003_seed.sql'] });
  });

  it('accepts a CRLF or BOM checkout of applied files, and histories recorded from one', async () => {
    const schema = nextSchema();
    const lf = await folder(BASE);
    await runner.migrate(schema, lf);
    // The same files checked out on Windows: CRLF line ends, and a BOM on one of them.
    const windows = await folder(
      Object.fromEntries(
        Object.entries(BASE).map(([name, text], i) => [
          name,
          (i === 1 ? '\uFEFF' : '') + text.replace(/\n/g, '\r\n'),
        ]),
      ),
    );
    const status = await runner.status(schema, windows);
    expect(status.changed).toEqual([]);
    await expect(runner.migrate(schema, windows)).resolves.toMatchObject({ applied: [] });
    // A history an earlier version wrote from the Windows checkout (checksum of the raw bytes)
    // stays valid on a Unix checkout.
    const rawCrlf = BASE['002_create_items.sql'].replace(/\n/g, '\r\n');
    await admin.query(`UPDATE "${schema}".schema_migrations SET checksum = $1 WHERE version = 2`, [
      createHash('sha256')
        .update('\uFEFF' + rawCrlf)
        .digest('hex'),
    ]);
    expect((await runner.status(schema, lf)).changed).toEqual([]);
    await write(lf, { '004_more.sql': 'ALTER TABLE {{tables.orders}} ADD COLUMN note text;\r\n' });
    await expect(runner.migrate(schema, lf)).resolves.toMatchObject({
      applied: [{ name: '004_more.sql' }],
    });
    // An edit is still an edit.
    await write(lf, { '001_create_orders.sql': BASE['001_create_orders.sql'] + '\n-- edited' });
    expect((await runner.status(schema, lf)).changed).toEqual(['001_create_orders.sql']);
  });

  it('gives up waiting for a held migration lock, naming the holder', async () => {
    const schema = nextSchema();
    const dir = await folder(BASE);
    await runner.migrate(
      schema,
      await folder({ '001_create_orders.sql': BASE['001_create_orders.sql'] }),
    );
    const stuck = new pg.Client({
      connectionString: database.current.url,
      application_name: 'stuck-deployer',
    });
    await stuck.connect();
    try {
      const { rows } = await stuck.query<{ pid: number }>(
        "SELECT pg_backend_pid() AS pid, pg_advisory_lock(x'7067746e'::int, hashtext($1))",
        [schema],
      );
      const strict = new MigrationRunner(
        { connectionString: database.current.url },
        { logger, lockTimeoutMs: 200 },
      );
      const error = await strict.migrate(schema, dir).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MigrationLockTimeoutError);
      const holder = (error as MigrationLockTimeoutError).holder!;
      expect(holder).toMatchObject({ pid: rows[0].pid, applicationName: 'stuck-deployer' });
      expect(holder.since).toBeInstanceOf(Date);
      expect((error as Error).message).toMatch(
        new RegExp(
          `Timed out after 200 ms waiting for the migration lock of schema "${schema}", held by pid ${rows[0].pid} \\(application_name "stuck-deployer"`,
        ),
      );
      expect(await history(schema)).toEqual([{ version: 1, name: '001_create_orders.sql' }]);
    } finally {
      await stuck.end();
    }
    // Once the holder is gone, the same runner proceeds; the limit did not stick to the session.
    await expect(runner.migrate(schema, dir)).resolves.toMatchObject({
      applied: [{ name: '002_create_items.sql' }, { name: '003_seed.sql' }],
    });
  });

  it('reports status and plans pending SQL without creating anything', async () => {
    const schema = nextSchema();
    const dir = await folder(BASE);
    const before = await runner.status(schema, dir);
    expect(before.applied).toEqual([]);
    expect(before.pending.map((f) => f.name)).toEqual(Object.keys(BASE));
    const plan = await runner.plan(schema, dir);
    expect(plan[0]).toEqual({
      name: '001_create_orders.sql',
      transactional: true,
      sql: `CREATE TABLE "${schema}"."orders" (id serial PRIMARY KEY, item text NOT NULL);`,
    });
    expect(
      await admin.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]),
    ).toMatchObject({ rowCount: 0 });
    await runner.migrate(schema, dir);
    const after = await runner.status(schema, dir);
    expect(after.applied.map((a) => a.name)).toEqual(Object.keys(BASE));
    expect(after.pending).toEqual([]);
  });

  describe('at application start-up', () => {
    it('applies named schemas in declaration order before the app serves', async () => {
      const users = await folder({
        '001_users.sql': 'CREATE TABLE {{tables.users}} (id int PRIMARY KEY);',
      });
      const orders = await folder({
        // Refers to the users schema: works only if users migrated first.
        '001_orders.sql':
          'CREATE TABLE {{tables.orders}} (user_id int REFERENCES app_users.users (id));',
      });
      const app = await Test.createTestingModule({
        imports: [
          DatabaseModule.forRoot({
            connection: database.current.url,
            schemas: { app_users: { migrations: users }, app_orders: { migrations: orders } },
          }),
        ],
      }).compile();
      try {
        expect(await tableExists('app_orders.orders')).toBe(false);
        await app.init();
        expect(await tableExists('app_users.users')).toBe(true);
        expect(await tableExists('app_orders.orders')).toBe(true);
      } finally {
        await app.close();
      }
    });

    it('applies a feature module schema with the app', async () => {
      const audit = await folder({ '001_log.sql': 'CREATE TABLE {{tables.log}} (msg text);' });
      const app = await Test.createTestingModule({
        imports: [
          DatabaseModule.forRoot({ connection: database.current.url }),
          DatabaseModule.forFeature({ name: 'feature_audit', migrations: audit }),
        ],
      }).compile();
      await app.init();
      await app.close();
      expect(await tableExists('feature_audit.log')).toBe(true);
    });

    it('connects with a pg.PoolConfig object, password included', async () => {
      const url = new URL(database.current.url);
      const dir = await folder({ '001_t.sql': 'CREATE TABLE {{tables.t}} (id int);' });
      const app = await Test.createTestingModule({
        imports: [
          DatabaseModule.forRoot({
            connection: {
              host: url.hostname,
              port: Number(url.port),
              user: decodeURIComponent(url.username),
              password: decodeURIComponent(url.password),
              database: url.pathname.slice(1),
            },
            schemas: { object_config: { migrations: dir } },
          }),
        ],
      }).compile();
      await app.init();
      await app.close();
      expect(await tableExists('object_config.t')).toBe(true);
    });

    it('does nothing with migrateOnStartup: false', async () => {
      const dir = await folder({ '001_t.sql': 'CREATE TABLE {{tables.t}} (id int);' });
      const app = await Test.createTestingModule({
        imports: [
          DatabaseModule.forRoot({
            connection: database.current.url,
            migrateOnStartup: false,
            schemas: { skipped_schema: { migrations: dir } },
          }),
        ],
      }).compile();
      await app.init();
      await app.close();
      expect(await tableExists('skipped_schema.t')).toBe(false);
    });

    it('warns at start-up about applied files deleted from the folder, or fails when told to', async () => {
      const dir = await folder({
        '001_t.sql': 'CREATE TABLE {{tables.t}} (id int);',
        '002_u.sql': 'CREATE TABLE {{tables.u}} (id int);',
      });
      const boot = async (missingMigrations?: 'warn' | 'fail') => {
        const app = await Test.createTestingModule({
          imports: [
            DatabaseModule.forRoot({
              connection: database.current.url,
              missingMigrations,
              schemas: { shrunk: { migrations: dir } },
            }),
          ],
        }).compile();
        const recorder = new RecordingLogger();
        app.useLogger(recorder);
        try {
          await app.init();
        } finally {
          await app.close();
          Logger.overrideLogger(new ConsoleLogger());
        }
        return recorder;
      };
      await boot();
      await rm(join(dir, '002_u.sql'));
      const recorder = await boot();
      expect(recorder.warnings.join('\n')).toMatch(
        /Schema shrunk has applied migrations whose files are missing from .*: 002_u\.sql/,
      );
      await expect(boot('fail')).rejects.toBeInstanceOf(MigrationFilesMissingError);
    });

    it('fails start-up when a migration fails', async () => {
      const dir = await folder({ '001_bad.sql': 'CREATE TABLE {{tables.t}} (id nonsense_type);' });
      const app = await Test.createTestingModule({
        imports: [
          DatabaseModule.forRoot({
            connection: database.current.url,
            schemas: { failing: { migrations: dir } },
          }),
        ],
      }).compile();
      await expect(app.init()).rejects.toBeInstanceOf(MigrationFailedError);
      await app.close();
    });
  });
});
