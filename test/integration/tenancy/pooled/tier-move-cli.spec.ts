// `tenants move <id> --to schema|pooled` from the CLI: a move between tiers, and the Citus
// node move still chosen for any other value.
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { jest } from '@jest/globals';
import { adminPool, useTestDatabase } from '../../../support/database.js';
import { runCli } from '../../../support/cli.js';
import { useMigrationFolders, write } from '../../../support/migrations.js';

jest.setTimeout(60_000);

const ROLE = `pooled_${randomUUID().slice(0, 8)}`;

describe('tenants move --to schema|pooled', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;
  let config: string;

  beforeAll(async () => {
    admin = adminPool(database.current.url);
    const root = await folder();
    const tenantDir = join(root, 'tenant');
    await mkdir(tenantDir);
    await write(tenantDir, {
      '001_notes.sql':
        'CREATE TABLE {{tables.notes}} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text);',
    });
    config = join(root, 'pg-tenancy.config.mjs');
    await writeFile(
      config,
      `export default ${JSON.stringify({
        connection: database.current.url,
        tenancy: {
          migrations: tenantDir,
          registrySchema: 'cli_moves',
          pooled: { role: ROLE },
          maxStalenessMs: 100,
        },
      })};\n`,
    );
  });
  afterAll(async () => {
    await admin.query(`DROP ROLE IF EXISTS ${ROLE}`).catch(() => undefined);
    await admin.end();
  });

  it('moves a tenant to the pooled tier and back, and keeps host:port for Citus', async () => {
    expect((await runCli(['tenants', 'create', 'acme', '-c', config])).code).toBe(0);
    await admin.query(
      "INSERT INTO tenant_acme.notes (body) SELECT 'n' || g FROM generate_series(1, 50) g",
    );
    const pooled = await runCli(['tenants', 'move', 'acme', '--to', 'pooled', '-c', config]);
    expect(pooled).toMatchObject({ code: 0 });
    expect(pooled.stdout).toMatch(
      /Moved tenant acme from the schema tier to the pooled tier: 50 rows copied, 0 changes caught up, writes paused \d+ ms\./,
    );
    expect(pooled.stderr).toContain('move acme: flipped');
    const rows = await admin.query(
      "SELECT count(*)::int AS n FROM tenancy_pooled.notes WHERE tenant_id = 'acme'",
    );
    expect(rows.rows[0].n).toBe(50);

    const back = await runCli([
      'tenants',
      'move',
      'acme',
      '--to',
      'schema',
      '--json',
      '-c',
      config,
    ]);
    expect(back).toMatchObject({ code: 0 });
    expect(JSON.parse(back.stdout)).toMatchObject({
      moved: true,
      from: 'pooled',
      to: 'schema',
      copiedRows: 50,
    });
    const again = await runCli(['tenants', 'move', 'acme', '--to', 'schema', '-c', config]);
    expect(again.stdout).toContain('Tenant acme is already in the schema tier: nothing moved.');

    // Anything else is a Citus node, as before.
    const node = await runCli(['tenants', 'move', 'acme', '--to', 'elsewhere', '-c', config]);
    expect(node.code).toBe(1);
    expect(node.stderr).toContain('the target must be host:port of a node');
  });
});
