import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { adminPool, useTestDatabase } from '../../support/database.js';
import { runCli } from '../../support/cli.js';
import { useMigrationFolders, write } from '../../support/migrations.js';

/**
 * The CLI as deploy scripts use it: settings from flags and the environment alone, --config
 * anywhere, --json, bulk create and `tenants exec`, each through the real binary and its exit
 * code.
 */
/** Each test runs the binary several times: generous, for a small and busy machine. */
const TIMEOUT = 180_000;

const cli = runCli;

describe('CLI for scripts', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;
  let root: string;
  let tenantDir: string;
  let sharedDir: string;
  /** No config file anywhere: only the environment. */
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    admin = adminPool(database.current.url);
    root = await folder();
    tenantDir = join(root, 'tenant');
    sharedDir = join(root, 'shared');
    await mkdir(tenantDir);
    await mkdir(sharedDir);
    await write(tenantDir, {
      '001_items.sql':
        'CREATE TABLE {{tables.items}} (n int); INSERT INTO {{tables.items}} VALUES (1);',
    });
    await write(sharedDir, { '001_plans.sql': 'CREATE TABLE {{tables.plans}} (id int);' });
    env = {
      ...process.env,
      DATABASE_URL: database.current.url,
      PG_TENANCY_TENANT_MIGRATIONS: tenantDir,
      PG_TENANCY_SCHEMA_PREFIX: 'scr_',
    };
  });
  afterAll(() => admin.end());

  it(
    'runs from DATABASE_URL and migration folders alone, without a config file',
    async () => {
      const migrated = await cli(['migrate', '--migrations', `shared=${sharedDir}`], {
        env,
        cwd: root,
      });
      expect(migrated).toMatchObject({ code: 0 });
      expect((await admin.query("SELECT to_regclass('shared.plans') AS t")).rows[0].t).toBe(
        'shared.plans',
      );
      const created = await cli(['tenants', 'create', 'solo'], { env, cwd: root });
      expect(created).toMatchObject({ code: 0 });
      expect(created.stdout).toContain('Created tenant solo (schema scr_solo, 1 migration(s)).');
      const none = await cli(['tenants', 'list'], {
        env: { ...process.env, DATABASE_URL: undefined },
        cwd: root,
      });
      expect(none.code).toBe(1);
      expect(none.stderr).toMatch(/No configuration: set DATABASE_URL/);
    },
    TIMEOUT,
  );

  it(
    'accepts --config before the subcommand, after it, and between',
    async () => {
      const config = join(root, 'deploy.config.mjs');
      await writeFile(
        config,
        `export default ${JSON.stringify({
          connection: database.current.url,
          tenancy: { migrations: tenantDir, schemaPrefix: 'scr_' },
        })};\n`,
      );
      const plain = { ...process.env, DATABASE_URL: undefined };
      for (const args of [
        ['--config', config, 'tenants', 'list'],
        ['tenants', '-c', config, 'list'],
        ['tenants', 'list', '--config', config],
      ]) {
        const run = await cli(args, { env: plain, cwd: root });
        expect({ args, code: run.code, stderr: run.stderr }).toEqual({ args, code: 0, stderr: '' });
        expect(run.stdout).toMatch(/solo\s+scr_solo\s+active/);
      }
    },
    TIMEOUT,
  );

  it(
    'loads a TypeScript config where Node can, and otherwise says how',
    async () => {
      const config = join(root, 'pg-tenancy.config.ts');
      await writeFile(
        config,
        `const config: { connection: string; tenancy: { schemaPrefix: string } } = ${JSON.stringify(
          {
            connection: database.current.url,
            tenancy: { schemaPrefix: 'scr_' },
          },
        )};\nexport default config;\n`,
      );
      const run = await cli(['tenants', 'list'], {
        env: { ...process.env, DATABASE_URL: undefined },
        cwd: root,
      });
      await rm(config); // found by default: the tests below run without a config file
      if ((process.features as { typescript?: unknown }).typescript) {
        expect(run).toMatchObject({ code: 0 });
        expect(run.stdout).toContain('solo');
      } else {
        expect(run.code).toBe(1);
        expect(run.stderr).toContain('pg-tenancy.config.ts is TypeScript');
        expect(run.stderr).toMatch(/npm install --save-dev tsx.*Node 22\.18\+.*rename it to \.mjs/);
      }
    },
    TIMEOUT,
  );

  it(
    'creates many tenants in one call, a few at a time, and exits 1 naming the one that failed',
    async () => {
      const ids = ['t01', 't02', 't03', 't04', 't05', 'Bad!', 't06'];
      const run = await cli(['tenants', 'create', ...ids, '--concurrency', '3'], {
        env,
        cwd: root,
      });
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/^create: 7\/7$/m); // progress, on stderr
      expect(run.stderr).toMatch(/Bad!: FAILED .*malformed/);
      expect(run.stdout).toContain('6 succeeded, 1 failed.');
      const schemas = await admin.query(
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'scr_t0%' ORDER BY 1",
      );
      expect(schemas.rows.map((r) => r.nspname)).toEqual(
        ['t01', 't02', 't03', 't04', 't05', 't06'].map((id) => `scr_${id}`),
      );
      const usage = await cli(['tenants', 'create', 'x', '--concurrency', '0'], { env, cwd: root });
      expect(usage.code).toBe(2);
    },
    TIMEOUT,
  );

  it(
    'prints --json for tenants list, bulk create and migrate --status',
    async () => {
      const list = await cli(['tenants', 'list', '--json'], { env, cwd: root });
      expect(list.code).toBe(0);
      const tenants = JSON.parse(list.stdout) as { id: string; schema: string; status: string }[];
      expect(tenants.map((t) => t.id)).toEqual(expect.arrayContaining(['solo', 't01', 't06']));
      expect(tenants.find((t) => t.id === 'solo')).toMatchObject({
        schema: 'scr_solo',
        status: 'active',
      });

      const created = await cli(['--json', 'tenants', 'create', 'j1', 'solo'], { env, cwd: root });
      expect(created.code).toBe(1);
      expect(JSON.parse(created.stdout)).toEqual([
        { tenant: 'j1', ok: true, tier: 'schema', schema: 'scr_j1', migrations: 1 },
        { tenant: 'solo', ok: false, error: 'Tenant "solo" already exists.' },
      ]);

      const fleet = await cli(['migrate', '--tenants', '--status', '--json'], { env, cwd: root });
      expect(fleet.code).toBe(0);
      expect(JSON.parse(fleet.stdout)).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ tenantId: 'solo', version: 1, pending: 0 }),
        ]),
      );
      const schemas = await cli(
        ['migrate', '--status', '--json', '--migrations', `shared=${sharedDir}`],
        { env, cwd: root },
      );
      expect(schemas.code).toBe(0);
      expect(JSON.parse(schemas.stdout)).toEqual([
        { schema: 'shared', applied: ['001_plans.sql'], pending: [], changed: [], missing: [] },
      ]);
    },
    TIMEOUT,
  );

  it(
    'runs SQL in every tenant or a chosen set, with per-tenant outcomes and exit codes',
    async () => {
      const all = await cli(
        ['tenants', 'exec', '--sql', 'INSERT INTO {{tables.items}} VALUES (2)', '-j', '2'],
        { env, cwd: root },
      );
      expect(all.code).toBe(0);
      expect(all.stdout).toMatch(/^solo: ok \(1 row\(s\)\)$/m);
      expect(all.stderr).toMatch(/^exec: \d+\/\d+$/m);
      const counts = await admin.query(
        'SELECT count(*)::int AS n FROM scr_t03.items UNION ALL SELECT count(*)::int FROM scr_solo.items',
      );
      expect(counts.rows).toEqual([{ n: 2 }, { n: 2 }]);

      const file = join(root, 'fix.sql');
      await writeFile(
        file,
        'UPDATE {{tables.items}} SET n = n * 10;\nSELECT sum(n)::int AS total FROM {{tables.items}};\n',
      );
      const some = await cli(
        ['tenants', 'exec', '--file', file, '--tenants', 't01', 't02', '--json'],
        {
          env,
          cwd: root,
        },
      );
      expect(some.code).toBe(0);
      expect(JSON.parse(some.stdout)).toEqual([
        { tenant: 't01', ok: true, rowCount: 1, rows: [{ total: 30 }] },
        { tenant: 't02', ok: true, rowCount: 1, rows: [{ total: 30 }] },
      ]);

      // One tenant fails: its transaction rolls back, the others commit, and the exit code says so.
      await admin.query('ALTER TABLE scr_t05.items ADD CONSTRAINT small CHECK (n < 5)');
      const failing = await cli(
        [
          'tenants',
          'exec',
          '--sql',
          'UPDATE {{tables.items}} SET n = n + 3',
          '--tenants',
          't04',
          't05',
          'nobody',
        ],
        { env, cwd: root },
      );
      expect(failing.code).toBe(1);
      expect(failing.stdout).toMatch(/^t04: ok \(2 row\(s\)\)$/m);
      expect(failing.stderr).toMatch(/^t05: FAILED .*violates check constraint "small"/m);
      expect(failing.stderr).toMatch(/^nobody: FAILED /m);
      expect(failing.stdout).toContain('1 succeeded, 2 failed.');
      expect(
        (await admin.query('SELECT array_agg(n ORDER BY n) AS n FROM scr_t05.items')).rows[0].n,
      ).toEqual([1, 2]);

      const usage = await cli(['tenants', 'exec'], { env, cwd: root });
      expect(usage.code).toBe(2);
      expect(usage.stderr).toMatch(/--file <path> or --sql <statement>/);
    },
    TIMEOUT,
  );

  it(
    'refuses SQL that commits or opens a transaction itself, before touching any tenant',
    async () => {
      const sum = async () =>
        (await admin.query('SELECT sum(n)::int AS s FROM scr_t01.items')).rows[0].s as number;
      const before = await sum();
      const file = join(root, 'half.sql');
      await writeFile(
        file,
        "UPDATE {{tables.items}} SET n = n + 100; -- one ';' here\ncommit;\nUPDATE {{tables.items}} SET n = 1/0;\n",
      );
      const refused = await cli(['tenants', 'exec', '--file', file, '--tenants', 't01'], {
        env,
        cwd: root,
      });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`(${file}) runs COMMIT at line 2`);
      expect(refused.stderr).toContain('No tenant was touched.');
      expect(`${refused.stdout}${refused.stderr}`).not.toMatch(/t01/);
      const inline = await cli(
        [
          'tenants',
          'exec',
          '--sql',
          'BEGIN; UPDATE {{tables.items}} SET n = n + 100; COMMIT; SELECT 1/0',
        ],
        { env, cwd: root },
      );
      expect(inline.code).toBe(1);
      expect(inline.stderr).toContain('(--sql) runs BEGIN at line 1');
      expect(await sum()).toBe(before);
    },
    TIMEOUT,
  );

  it(
    'lists every tenants subcommand in its help',
    async () => {
      const help = await cli(['tenants', '--help'], { env, cwd: root });
      expect(help.code).toBe(0);
      for (const sub of ['create', 'drop', 'suspend', 'resume', 'list', 'exec']) {
        expect(help.stdout).toMatch(new RegExp(`^  ${sub}\\b`, 'm'));
      }
    },
    TIMEOUT,
  );
});
