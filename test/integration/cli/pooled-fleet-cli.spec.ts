// The CLI with both tiers: create --tier, the tier in list and in the fleet view, the pooled
// schema's line in migrate --tenants, import --tier.
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { jest } from '@jest/globals';
import { adminPool, useTestDatabase } from '../../support/database.js';
import { runCli } from '../../support/cli.js';
import { useMigrationFolders, write } from '../../support/migrations.js';

const cli = (args: string[]) => runCli(args);
const ROLE = `pooled_${randomUUID().slice(0, 8)}`;

// Each step starts a process: generous for a busy machine.
jest.setTimeout(120_000);

describe('tenants CLI with the pooled tier', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;
  let config: string;
  let root: string;
  let tenantDir: string;

  beforeAll(async () => {
    admin = adminPool(database.current.url);
    root = await folder();
    tenantDir = await folder({
      '001_projects.sql': 'CREATE TABLE {{tables.projects}} (id serial PRIMARY KEY, name text);',
    });
    config = join(root, 'pg-tenancy.config.mjs');
    await writeFile(
      config,
      `export default ${JSON.stringify({
        connection: database.current.url,
        tenancy: { migrations: tenantDir, registrySchema: 'tier_cli', pooled: { role: ROLE } },
      })};\n`,
    );
  });
  afterAll(async () => {
    await admin.end();
    const client = new pg.Client(process.env.DATABASE_URL);
    await client.connect();
    await client.query(`DROP ROLE IF EXISTS ${ROLE}`);
    await client.end();
  });

  it('creates, lists, migrates, exports and imports tenants of both tiers', async () => {
    const created = await cli(['tenants', 'create', 'small', '--tier', 'pooled', '-c', config]);
    expect(created.stdout).toContain('Created tenant small (pooled, 1 migration(s)).');
    expect((await cli(['tenants', 'create', 'big', '-c', config])).code).toBe(0);
    const bad = await cli(['tenants', 'create', 'x', '--tier', 'shared', '-c', config]);
    expect(bad.code).toBe(2);

    const listed = await cli(['tenants', 'list', '-c', config]);
    expect(listed.stdout).toMatch(/^tenant\s+schema\s+status\s+tier\s+created$/m);
    expect(listed.stdout).toMatch(/^small\s+tenant_small\s+active\s+pooled\s/m);
    expect(listed.stdout).toMatch(/^big\s+tenant_big\s+active\s+schema\s/m);
    const listedJson = (await cli(['tenants', 'list', '--json', '-c', config])).stdout;
    const json = JSON.parse(listedJson) as { id: string; tier: string }[];
    expect(json.map((t) => [t.id, t.tier])).toEqual([
      ['big', 'schema'],
      ['small', 'pooled'],
    ]);

    await write(tenantDir, { '002_note.sql': 'ALTER TABLE {{tables.projects}} ADD note text;' });
    const status = await cli(['migrate', '--tenants', '--status', '-c', config]);
    expect(status.stdout).toMatch(/^small\s+active\s+1\s+1\s+pooled$/m);
    const migrated = await cli(['migrate', '--tenants', '-c', config]);
    expect(migrated.code).toBe(0);
    expect(migrated.stdout).toContain(
      'Pooled schema tenancy_pooled (1 tenant(s)): applied 002_note.sql',
    );
    expect(migrated.stdout).toContain('big: applied 002_note.sql');
    const after = JSON.parse(
      (await cli(['migrate', '--tenants', '--status', '--json', '-c', config])).stdout,
    ) as { tenantId: string; tier: string; pending: number }[];
    expect(after.map((s) => [s.tenantId, s.tier, s.pending])).toEqual([
      ['big', 'schema', 0],
      ['small', 'pooled', 0],
    ]);

    const path = join(root, 'small-export');
    expect((await cli(['tenants', 'export', 'small', path, '-c', config])).code).toBe(0);
    const imported = await cli([
      'tenants',
      'import',
      path,
      '--id',
      'copy',
      '--tier',
      'pooled',
      '-c',
      config,
    ]);
    expect(imported.stdout).toContain(`Imported tenant copy (pooled) from ${path}.`);
    const cloned = await cli(['tenants', 'clone', 'copy', 'copy2', '-c', config]);
    expect(cloned.stdout).toContain('Cloned tenant copy into copy2 (pooled).');
    const tiers = await admin.query('SELECT id, tier FROM tier_cli.tenants ORDER BY id');
    expect(tiers.rows).toEqual([
      { id: 'big', tier: 'schema' },
      { id: 'copy', tier: 'pooled' },
      { id: 'copy2', tier: 'pooled' },
      { id: 'small', tier: 'pooled' },
    ]);
  });
});
