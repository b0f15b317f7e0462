import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { adminPool, useTestDatabase } from '../../support/database.js';
import { CLI_BIN as BIN, runCli } from '../../support/cli.js';
import { useMigrationFolders, write } from '../../support/migrations.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

const cli = (args: string[], cwd?: string, env: NodeJS.ProcessEnv = process.env): Promise<Run> =>
  runCli(args, { cwd, env });

describe('migrate CLI', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;

  /** A project folder with a config file declaring `schemas` → their migration folders. */
  async function project(schemas: Record<string, Record<string, string>>) {
    const root = await folder();
    const declared: Record<string, { migrations: string }> = {};
    for (const [schema, files] of Object.entries(schemas)) {
      const dir = join(root, schema);
      await import('node:fs/promises').then((fs) => fs.mkdir(dir));
      await write(dir, files);
      declared[schema] = { migrations: dir };
    }
    const config = join(root, 'pg-tenancy.config.mjs');
    await writeFile(
      config,
      `export default async () => (${JSON.stringify({ connection: database.current.url, schemas: declared })});\n`,
    );
    return { root, config, dirs: declared };
  }

  beforeAll(() => {
    admin = adminPool(database.current.url);
  });
  afterAll(() => admin.end());

  it('shows status, prints a dry run without applying, then applies (exit 0 each)', async () => {
    const { root } = await project({
      cli_a: {
        '001_t.sql': 'CREATE TABLE {{tables.t}} (id int);',
        '002_u.sql': 'CREATE TABLE {{tables.u}} (id int);',
      },
    });
    const status = await cli(['migrate', '--status'], root);
    expect(status).toMatchObject({ code: 0 });
    expect(status.stdout).toContain('cli_a: 0 applied, 2 pending (001_t.sql, 002_u.sql)');

    const dry = await cli(['migrate', '--dry-run'], root);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain('-- cli_a/001_t.sql\nCREATE TABLE "cli_a"."t" (id int);');
    expect((await admin.query("SELECT to_regclass('cli_a.t') AS t")).rows[0].t).toBeNull();

    const apply = await cli(['migrate'], root);
    expect(apply.code).toBe(0);
    expect(apply.stdout).toMatch(/Applied cli_a\/001_t\.sql in \d+ ms/);
    expect(apply.stdout).toContain('Done: 2 migrations applied.');

    const again = await cli(['migrate', '--status'], root);
    expect(again.stdout).toContain('cli_a: 2 applied (last 002_u.sql), 0 pending');
  });

  it('limits work to --schema and rejects an unknown one', async () => {
    const { config } = await project({
      cli_b1: { '001_t.sql': 'CREATE TABLE {{tables.t}} (id int);' },
      cli_b2: { '001_t.sql': 'CREATE TABLE {{tables.t}} (id int);' },
    });
    expect((await cli(['migrate', '--config', config, '--schema', 'cli_b2'])).code).toBe(0);
    const rows = await admin.query(
      "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'cli_b%' ORDER BY 1",
    );
    expect(rows.rows).toEqual([{ nspname: 'cli_b2' }]);
    const unknown = await cli(['migrate', '--config', config, '--schema', 'nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/error: Unknown schema "nope"/);
  });

  it('exits 1 with the error on stderr when a migration fails or a file changed', async () => {
    const { config, dirs } = await project({
      cli_c: { '001_t.sql': 'CREATE TABLE {{tables.t}} (id int);', '002_bad.sql': 'SELEC 1;' },
    });
    const failed = await cli(['migrate', '--config', config]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(
      /error: Migration 002_bad\.sql \(line 1\) failed in schema "cli_c": syntax error/,
    );

    await write(dirs.cli_c.migrations, { '001_t.sql': 'CREATE TABLE {{tables.t}} (id bigint);' });
    const status = await cli(['migrate', '--config', config, '--status']);
    expect(status.code).toBe(1);
    expect(status.stdout).toContain('CHANGED after apply: 001_t.sql');
  });

  it('exits 2 on bad usage and 1 when there is no config', async () => {
    const usage = await cli(['migrate', '--no-such-flag']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/unknown option '--no-such-flag'/);
    const root = await folder();
    const withoutUrl = { ...process.env, DATABASE_URL: undefined };
    const missing = await cli(['migrate'], root, withoutUrl);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/No configuration: set DATABASE_URL .* pg-tenancy\.config\.mjs/);
  });

  it('says that no named schemas are configured instead of "0 migrations applied"', async () => {
    const root = await folder();
    await writeFile(
      join(root, 'pg-tenancy.config.mjs'),
      `export default ${JSON.stringify({ connection: database.current.url, tenancy: { registrySchema: 'cli_only_tenancy' } })};\n`,
    );
    const run = await cli(['migrate'], root);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(
      /No named schemas with migrations are configured\. This config has only tenancy: run "migrate --tenants"/,
    );
    expect(run.stdout).not.toMatch(/Done: 0 migrations applied/);
  });

  it('applies each file exactly once when 8 processes migrate at the same time', async () => {
    const files: Record<string, string> = {
      '001_log.sql': 'CREATE TABLE {{tables.applied}} (file text NOT NULL);',
    };
    for (let n = 2; n <= 6; n++) {
      // pg_sleep widens the window in which a second migrator could slip in.
      files[`00${n}_step.sql`] =
        `SELECT pg_sleep(0.05);\nCREATE TABLE {{tables.t${n}}} (id int);\nINSERT INTO {{tables.applied}} VALUES ('${n}');`;
    }
    const { config } = await project({ cli_race: files });
    const runs = await Promise.all(
      Array.from(
        { length: 8 },
        () =>
          new Promise<Run>((done) => {
            const child = spawn(process.execPath, [BIN, 'migrate', '--config', config]);
            let stdout = '';
            let stderr = '';
            child.stdout.on('data', (d) => (stdout += d));
            child.stderr.on('data', (d) => (stderr += d));
            child.on('close', (code) => done({ code, stdout, stderr }));
          }),
      ),
    );
    expect(runs.map((r) => r.code)).toEqual(Array(8).fill(0));
    const applied = await admin.query(
      'SELECT file, count(*)::int AS n FROM cli_race.applied GROUP BY file ORDER BY file',
    );
    expect(applied.rows).toEqual(['2', '3', '4', '5', '6'].map((file) => ({ file, n: 1 })));
    const historyRows = await admin.query(
      'SELECT count(*)::int AS n FROM cli_race.schema_migrations',
    );
    expect(historyRows.rows[0].n).toBe(6);
    // Every file was applied by exactly one of the processes.
    const totalApplied = runs.reduce(
      (sum, r) => sum + (r.stdout.match(/^Applied /gm)?.length ?? 0),
      0,
    );
    expect(totalApplied).toBe(6);
  }, 180_000); // eight Node processes starting at once: slow on a small, busy machine
});
