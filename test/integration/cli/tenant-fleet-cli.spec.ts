import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { adminPool, useTestDatabase } from '../../support/database.js';
import { runCli } from '../../support/cli.js';
import { useMigrationFolders, write } from '../../support/migrations.js';
import { jest } from '@jest/globals';

const cli = (args: string[]) => runCli(args);

jest.setTimeout(120_000);

describe('tenants CLI: clone, rename, export, import, and migration waves', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;
  let root: string;
  let config: string;
  let tenantDir: string;

  beforeAll(async () => {
    admin = adminPool(database.current.url);
    root = await folder();
    tenantDir = join(root, 'tenant');
    await mkdir(tenantDir);
    await write(tenantDir, {
      '001_projects.sql': 'CREATE TABLE {{tables.projects}} (id serial PRIMARY KEY, name text);',
    });
    config = join(root, 'pg-tenancy.config.mjs');
    await writeFile(
      config,
      `export default ${JSON.stringify({
        connection: database.current.url,
        tenancy: { migrations: tenantDir, registrySchema: 'fleet_cli', schemaPrefix: 'fc_' },
      })};\n`,
    );
  });
  afterAll(() => admin.end());

  it('clones, renames, exports and imports a tenant', async () => {
    expect((await cli(['tenants', 'create', 'src', '-c', config])).code).toBe(0);
    await admin.query(`INSERT INTO fc_src.projects (name) VALUES ('one'), ('two')`);

    const cloned = await cli(['tenants', 'clone', 'src', 'copy', '-c', config]);
    expect(cloned).toMatchObject({ code: 0 });
    expect(cloned.stdout).toContain('Cloned tenant src into copy (schema fc_copy).');
    const renamed = await cli(['tenants', 'rename', 'copy', 'moved', '--json', '-c', config]);
    expect(JSON.parse(renamed.stdout)).toMatchObject({ id: 'moved', schema: 'fc_moved' });

    const dir = join(root, 'export-moved');
    const exported = await cli(['tenants', 'export', 'moved', dir, '-c', config]);
    expect(exported.stdout).toContain('2 table(s), 3 row(s)');
    const imported = await cli(['tenants', 'import', dir, '--id', 'back', '-c', config]);
    expect(imported).toMatchObject({ code: 0 });
    const names = await admin.query<{ name: string }>(
      'SELECT name FROM fc_back.projects ORDER BY id',
    );
    expect(names.rows.map((r) => r.name)).toEqual(['one', 'two']);

    const refused = await cli(['tenants', 'import', join(root, 'nowhere'), '-c', config]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/refused and nothing was created/);
  });

  it('exports under missing parent directories, refuses an existing path and a malformed manifest', async () => {
    // A relative path whose parent does not exist yet: created, as mkdir -p does.
    const exported = await runCli(['tenants', 'export', 'src', 'backups/src', '-c', config], {
      cwd: root,
    });
    expect(exported).toMatchObject({ code: 0 });
    expect(exported.stdout).toContain(`Exported tenant src to ${join(root, 'backups', 'src')}:`);
    const again = await runCli(['tenants', 'export', 'src', 'backups/src', '-c', config], {
      cwd: root,
    });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/the path already exists/);

    const manifest = join(root, 'backups', 'src', 'manifest.json');
    const parsed = JSON.parse(await readFile(manifest, 'utf8')) as Record<string, unknown>;
    await writeFile(manifest, JSON.stringify({ ...parsed, tables: null }));
    const refused = await cli([
      'tenants',
      'import',
      join(root, 'backups', 'src'),
      '--id',
      'nul',
      '-c',
      config,
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /refused and nothing was created .*field tables must be an array \(found null\)/,
    );
    expect((await admin.query("SELECT 1 FROM fleet_cli.tenants WHERE id = 'nul'")).rowCount).toBe(
      0,
    );
  });

  it('migrates in waves with a canary, and shows the waves in the fleet view', async () => {
    await write(tenantDir, { '002_extra.sql': 'CREATE TABLE {{tables.extra}} (id int);' });
    await admin.query('CREATE TABLE fc_src.extra (other text)');
    const stopped = await cli([
      'migrate',
      '--tenants',
      '--canary',
      'src',
      'back',
      '--wave-size',
      '1',
      '-c',
      config,
    ]);
    expect(stopped.code).toBe(1);
    expect(stopped.stderr).toContain('Stopped in wave 0: a canary tenant failed');
    expect(stopped.stdout).toContain(
      'wave 1: 0 applied, 0 up to date, 0 failed, 0 gone, 1 not attempted',
    );

    const status = await cli(['migrate', '--tenants', '--status', '-c', config]);
    expect(status.stdout).toMatch(/back\s+active\s+2\s+0\s+0 \(canary\)\s+applied/);
    expect(status.stdout).toMatch(/src\s+active\s+1\s+1\s+0 \(canary\)\s+failed/);
    expect(status.stdout).toContain('Rollout of 2 file(s): stopped (canary-failed)');

    await admin.query('DROP TABLE fc_src.extra');
    const retried = await cli(['migrate', '--tenants', '--retry-failed', '-c', config]);
    expect(retried.code).toBe(0);
    expect(retried.stdout).toContain('src: applied 002_extra.sql');
    const resumed = await cli(['migrate', '--tenants', '-c', config]);
    expect(resumed.stdout).toContain('moved: applied 002_extra.sql');
    expect(resumed.stdout).toContain('Tenants: 1 migrated, 2 up to date, 0 failed');
  });

  it('forgets a failure once the failing file is deleted: status exits 0, --retry-failed clears it', async () => {
    await write(tenantDir, { '003_broken.sql': 'SELECT 1/0;' });
    expect((await cli(['migrate', '--tenants', '-c', config])).code).toBe(1);
    const failing = await cli(['migrate', '--tenants', '--status', '-c', config]);
    expect(failing.code).toBe(1);
    expect(failing.stdout).toContain('division by zero');

    await rm(join(tenantDir, '003_broken.sql'));
    const fixed = await cli(['migrate', '--tenants', '--status', '-c', config]);
    expect(fixed.code).toBe(0);
    expect(fixed.stdout).not.toContain('division by zero');
    expect(fixed.stdout).toContain('0 with pending migrations, 0 needing attention.');
    const retried = await cli(['migrate', '--tenants', '--retry-failed', '-c', config]);
    expect(retried.code).toBe(0);
    const left = await admin.query('SELECT id FROM fleet_cli.tenants WHERE last_error IS NOT NULL');
    expect(left.rows).toEqual([]);
  });
});
