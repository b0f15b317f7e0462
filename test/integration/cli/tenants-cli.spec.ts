import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { adminPool, useTestDatabase } from '../../support/database.js';
import { runCli, writeCliProject } from '../../support/cli.js';
import { useMigrationFolders, write } from '../../support/migrations.js';
import { jest } from '@jest/globals';

const cli = (args: string[]) => runCli(args);

// These steps start processes and wait on other sessions; a busy machine outlasts Jest's default.
jest.setTimeout(120_000);

describe('tenants CLI', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;
  let config: string;
  let tenantDir: string;

  beforeAll(async () => {
    admin = adminPool(database.current.url);
    ({ config, tenantDir } = await writeCliProject(
      await folder(),
      database.current.url,
      'cli_reg',
      {
        '001_projects.sql': 'CREATE TABLE {{tables.projects}} (id int);',
      },
    ));
  });
  afterAll(() => admin.end());

  it('creates, lists, suspends and drops tenants', async () => {
    const created = await cli([
      'tenants',
      'create',
      'acme',
      '--metadata',
      '{"plan":"pro"}',
      '-c',
      config,
    ]);
    expect(created).toMatchObject({ code: 0 });
    expect(created.stdout).toContain('Created tenant acme (schema tenant_acme, 1 migration(s)).');
    expect((await cli(['tenants', 'create', 'beta', '-c', config])).code).toBe(0);

    const listed = await cli(['tenants', 'list', '-c', config]);
    expect(listed.stdout).toMatch(/acme\s+tenant_acme\s+active/);
    expect(listed.stdout).toContain('2 tenant(s).');
    const meta = await admin.query("SELECT metadata FROM cli_reg.tenants WHERE id = 'acme'");
    expect(meta.rows[0].metadata).toEqual({ plan: 'pro' });

    expect((await cli(['tenants', 'suspend', 'beta', '-c', config])).stdout).toContain(
      'Tenant beta is suspended.',
    );
    expect((await cli(['tenants', 'resume', 'beta', '-c', config])).stdout).toContain(
      'Tenant beta is active.',
    );

    const duplicate = await cli(['tenants', 'create', 'acme', '-c', config]);
    expect(duplicate.code).toBe(1);
    expect(duplicate.stderr).toContain('acme: FAILED Tenant "acme" already exists.');
    const invalid = await cli(['tenants', 'create', 'Bad Id', '-c', config]);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/malformed/);
    expect((await cli(['tenants', 'create', 'x', '--metadata', '[1]', '-c', config])).code).toBe(1);

    const unconfirmed = await cli(['tenants', 'drop', 'beta', '-c', config]);
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toMatch(/--yes/);
    expect((await cli(['tenants', 'drop', 'beta', '--yes', '-c', config])).code).toBe(0);
    expect(
      (await admin.query("SELECT 1 FROM pg_namespace WHERE nspname = 'tenant_beta'")).rowCount,
    ).toBe(0);
  }, 180_000); // many runs of the binary: generous for a busy machine

  it('shows the fleet, migrates only what is pending, and exits 1 when a tenant fails', async () => {
    await cli(['tenants', 'create', 'gamma', '-c', config]);
    await cli(['tenants', 'create', 'delta', '-c', config]);
    await write(tenantDir, { '002_tasks.sql': 'CREATE TABLE {{tables.tasks}} (id int);' });
    await admin.query('CREATE TABLE tenant_delta.tasks (x int)'); // delta will fail

    const before = await cli(['migrate', '--tenants', '--status', '-c', config]);
    expect(before.code).toBe(0);
    expect(before.stdout).toMatch(/gamma\s+active\s+1\s+1/);
    expect(before.stdout).toMatch(/with pending migrations/);

    const run = await cli(['migrate', '--tenants', '-c', config]);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain('gamma: applied 002_tasks.sql');
    expect(run.stderr).toMatch(/delta: FAILED .*"tasks" already exists/);
    expect(run.stdout).toMatch(/Tenants: \d+ migrated, 0 up to date, 1 failed/);

    const after = await cli(['migrate', '--tenants', '--status', '-c', config]);
    expect(after.code).toBe(1);
    expect(after.stdout).toMatch(/delta\s+active\s+1\s+1\s+.*already exists/);
    expect(after.stdout).toMatch(/gamma\s+active\s+2\s+0/);

    await admin.query('DROP TABLE tenant_delta.tasks');
    const retry = await cli(['migrate', '--tenants', 'delta', '-c', config]);
    expect(retry.code).toBe(0);
    expect(retry.stdout).toContain('delta: applied 002_tasks.sql');
    expect(retry.stdout).toContain('Tenants: 1 migrated, 0 up to date, 0 failed');
  }, 180_000); // many runs of the binary: generous for a busy machine

  it('migrates named schemas and then tenants with --all', async () => {
    const run = await cli(['migrate', '--all', '-c', config]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/shared/);
    expect(run.stdout).toMatch(/Tenants: 0 migrated, \d+ up to date, 0 failed/);
    expect((await admin.query("SELECT to_regclass('shared.plans') AS t")).rows[0].t).not.toBeNull();
  }, 180_000); // many runs of the binary: generous for a busy machine

  it('reads without writing: list and --status say there is no registry and create nothing', async () => {
    const bare = join(tenantDir, '..', 'bare.config.mjs');
    await writeFile(
      bare,
      `export default ${JSON.stringify({
        connection: database.current.url,
        tenancy: { migrations: tenantDir, registrySchema: 'cli_absent' },
      })};\n`,
    );
    for (const args of [
      ['tenants', 'list'],
      ['migrate', '--tenants', '--status'],
    ]) {
      const run = await cli([...args, '-c', bare]);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(
        /no tenant registry in this database.*"cli_absent"\."tenants".*Nothing was created/,
      );
    }
    const schema = await admin.query("SELECT 1 FROM pg_namespace WHERE nspname = 'cli_absent'");
    expect(schema.rowCount).toBe(0);
  }, 180_000);

  it('shows unfinished tenants and repairs them', async () => {
    await cli(['tenants', 'create', 'epsilon', '-c', config]);
    // As a crash in the middle of a drop leaves it.
    await admin.query("UPDATE cli_reg.tenants SET status = 'dropping' WHERE id = 'epsilon'");
    const listed = await cli(['tenants', 'list', '-c', config]);
    expect(listed.stdout).toMatch(/epsilon\s+tenant_epsilon\s+dropping/);
    expect(listed.stdout).toMatch(/1 being created or dropped.*tenants repair <id>/);
    const repaired = await cli(['tenants', 'repair', 'epsilon', '-c', config]);
    expect(repaired).toMatchObject({ code: 0 });
    expect(repaired.stdout).toContain('Tenant epsilon was dropping: schema and row removed.');
    expect(
      (await admin.query("SELECT 1 FROM pg_namespace WHERE nspname = 'tenant_epsilon'")).rowCount,
    ).toBe(0);
    const nothing = await cli(['tenants', 'repair', 'gamma', '-c', config]);
    expect(nothing.stdout).toContain('Tenant gamma is active: nothing to repair.');
  }, 180_000);
});
