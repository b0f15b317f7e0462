// The CLI's entry, `main(argv)`, run inside the test process: the same program the binary runs
// (bin.ts only sets the exit code), with its output captured. The specs beside this one run the
// built binary in child processes, as a user does; this one also lets V8's coverage see the
// commands' code, which it cannot follow into a child process.
import { join } from 'node:path';
import { jest } from '@jest/globals';
import pg from 'pg';
import { main } from '../../../lib/cli/main.js';
import { adminPool, useTestDatabase } from '../../support/database.js';
import { writeCliProject } from '../../support/cli.js';
import { closedPort } from '../../support/tcp-proxy.js';
import { useMigrationFolders, write } from '../../support/migrations.js';

jest.setTimeout(60_000);

/** Runs `main` with `args`; resolves to its exit code and what it printed on stdout and stderr. */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = jest.spyOn(console, 'log').mockImplementation((...a: unknown[]) => {
    out.push(a.map(String).join(' '));
  });
  const error = jest.spyOn(console, 'error').mockImplementation((...a: unknown[]) => {
    err.push(a.map(String).join(' '));
  });
  const write = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: unknown) => {
    err.push(String(chunk));
    return true;
  });
  try {
    const code = await main(['node', 'nestjs-pg-tenancy', ...args]);
    return { code, stdout: out.join('\n'), stderr: err.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
    write.mockRestore();
  }
}

describe('the CLI in process (main)', () => {
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
      'inproc_reg',
      { '001_notes.sql': 'CREATE TABLE {{tables.notes}} (id int);' },
    ));
  });
  afterAll(() => admin.end());

  it('migrates named schemas, reports their status, and exits 0', async () => {
    const pending = await cli(['migrate', '--status', '--json', '-c', config]);
    expect(pending.code).toBe(0);
    expect(JSON.parse(pending.stdout)).toEqual([
      expect.objectContaining({ schema: 'shared', pending: ['001_plans.sql'] }),
    ]);
    const run = await cli(['migrate', '-c', config]);
    expect(run).toMatchObject({ code: 0 });
    expect(run.stdout).toMatch(/shared.*001_plans\.sql/);
    expect((await admin.query("SELECT to_regclass('shared.plans') AS t")).rows[0].t).toBe(
      'shared.plans',
    );
  });

  it('creates, lists (table and JSON), suspends, resumes and drops a tenant', async () => {
    const created = await cli([
      'tenants',
      'create',
      'acme',
      '--metadata',
      '{"plan":"pro"}',
      '-c',
      config,
    ]);
    expect(created.code).toBe(0);
    expect(created.stdout).toContain('Created tenant acme (schema tenant_acme, 1 migration(s)).');

    const table = await cli(['tenants', 'list', '-c', config]);
    expect(table.stdout).toMatch(/acme\s+tenant_acme\s+active/);
    const json = await cli(['tenants', 'list', '--json', '-c', config]);
    expect(JSON.parse(json.stdout)).toEqual([
      expect.objectContaining({ id: 'acme', schema: 'tenant_acme', status: 'active' }),
    ]);

    expect((await cli(['tenants', 'suspend', 'acme', '-c', config])).stdout).toContain(
      'Tenant acme is suspended.',
    );
    expect((await cli(['tenants', 'resume', 'acme', '-c', config])).stdout).toContain(
      'Tenant acme is active.',
    );

    const unconfirmed = await cli(['tenants', 'drop', 'acme', '-c', config]);
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr).toMatch(/--yes/);
    expect((await cli(['tenants', 'drop', 'acme', '--yes', '-c', config])).code).toBe(0);
    expect(
      (await admin.query("SELECT 1 FROM pg_namespace WHERE nspname = 'tenant_acme'")).rowCount,
    ).toBe(0);
  });

  it('migrates tenants with a progress line per tenant, and says which one failed', async () => {
    await cli(['tenants', 'create', 'good', '-c', config]);
    await cli(['tenants', 'create', 'bad', '-c', config]);
    await write(tenantDir, { '002_tasks.sql': 'CREATE TABLE {{tables.tasks}} (id int);' });
    await admin.query('CREATE TABLE tenant_bad.tasks (x int)');

    const run = await cli(['migrate', '--tenants', '-c', config]);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain('good: applied 002_tasks.sql');
    expect(run.stderr).toMatch(/bad: FAILED .*"tasks" already exists/);
    expect(run.stderr).toMatch(/tenants: 2\/2/); // the progress line, off a terminal

    const status = await cli(['migrate', '--tenants', '--status', '--json', '-c', config]);
    expect(status.code).toBe(1);
    expect(JSON.parse(status.stdout)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ tenantId: 'bad', pending: 1 }),
        expect.objectContaining({ tenantId: 'good', pending: 0 }),
      ]),
    );
  });

  it('says which database it cannot reach, naming user@host:port/db, and refuses a mistyped scheme', async () => {
    const url = new URL(database.current.url);
    url.port = String(await closedPort());
    url.password = 'Sekr3t-pw';
    const target = `${url.username}@127.0.0.1:${url.port}${url.pathname}`;
    for (const args of [
      ['tenants', 'list', '--tenant-migrations', tenantDir],
      ['migrate', '--migrations', `shared=${tenantDir}`],
    ]) {
      const run = await cli([...args, '--database-url', url.toString()]);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(
        new RegExp(`^error: Could not connect to PostgreSQL at ${target}: connect ECONNREFUSED`),
      );
      expect(run.stderr).not.toContain('Sekr3t');
    }
    url.protocol = 'postgress:';
    const typo = await cli([
      'tenants',
      'list',
      '--tenant-migrations',
      tenantDir,
      '--database-url',
      url.toString(),
    ]);
    expect(typo.code).toBe(1);
    expect(typo.stderr).toMatch(
      /must start with postgres:\/\/ or postgresql:\/\/.*not postgress:\/\//,
    );
    expect(typo.stderr).not.toContain('Sekr3t');
  });

  it('answers a config it cannot load, and a usage error, with their exit codes', async () => {
    const missing = await cli(['tenants', 'list', '-c', join(tenantDir, 'nope.config.mjs')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/nope\.config\.mjs/);
    const usage = await cli(['tenants', 'frobnicate']);
    expect(usage.code).toBe(2);
  });
});
