// Export and import refusals: a malformed manifest is a TenantImportError naming the field, with
// nothing written; an export path gets its missing parents, never reuses an existing path, and
// its errors give the true reason.
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { openTenancy } from '../../../../lib/cli/tenancy-cli.js';
import { TenantNotFoundError, type TenantService } from '../../../../lib/index.js';
import { TenantExportError, TenantImportError } from '../../../../lib/tenancy/index.js';
import { adminPool, useTestDatabase } from '../../../support/database.js';
import { useMigrationFolders } from '../../../support/migrations.js';
import { jest } from '@jest/globals';

jest.setTimeout(60_000);

type Manifest = Record<string, unknown> & {
  tenant: Record<string, unknown>;
  tables: Record<string, unknown>[];
  migrations: Record<string, unknown>[];
  sequences: Record<string, unknown>[];
};

describe('tenant export and import errors', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;
  let tenancy: { service: TenantService; end(): Promise<void> } | undefined;
  let service: TenantService;
  let work: string;
  let exported: string;

  beforeAll(async () => {
    admin = adminPool(database.current.url);
    const migrations = await folder({
      '001_items.sql':
        "CREATE TABLE {{tables.items}} (id serial PRIMARY KEY, name text); INSERT INTO {{tables.items}} (name) VALUES ('a'), ('b');",
    });
    tenancy = await openTenancy({
      connection: database.current.url,
      tenancy: { migrations, registrySchema: 'xfer_reg', schemaPrefix: 'xfer_' },
    });
    service = tenancy.service;
    await service.create('alpha');
    work = await mkdtemp(join(tmpdir(), 'pgt-transfer-'));
    exported = join(work, 'alpha');
    await service.export('alpha', exported);
  });
  afterAll(async () => {
    await tenancy?.end();
    await admin?.end();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Registry rows and tenant schemas: an import that was refused must add neither. */
  const footprint = async () => ({
    rows: (await admin.query('SELECT id FROM xfer_reg.tenants ORDER BY id')).rows,
    schemas: (
      await admin.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'xfer\\_%' ORDER BY 1")
    ).rows,
  });

  let copies = 0;
  /** A copy of the export whose manifest `edit` changed (or replaced). */
  async function malformed(edit: (m: Manifest) => unknown): Promise<string> {
    const dir = join(work, `malformed-${++copies}`);
    await cp(exported, dir, { recursive: true });
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as Manifest;
    const edited = edit(manifest);
    await writeFile(
      join(dir, 'manifest.json'),
      JSON.stringify(edited === undefined ? manifest : edited),
    );
    return dir;
  }

  it.each<[string, (m: Manifest) => unknown, string]>([
    ['tables: null', (m) => void (m.tables = null as never), 'tables'],
    ['migrations missing', (m) => void delete (m as Partial<Manifest>).migrations, 'migrations'],
    ['migrations a string', (m) => void (m.migrations = '001_items.sql' as never), 'migrations'],
    ['tables nested one level too deep', (m) => void (m.tables = [m.tables] as never), 'tables[0]'],
    ['a row count as text', (m) => void (m.tables[0].rows = '2'), 'tables[0].rows'],
    ['a negative byte count', (m) => void (m.tables[0].bytes = -1), 'tables[0].bytes'],
    ['columns as one string', (m) => void (m.tables[0].columns = 'id,name'), 'tables[0].columns'],
    ['tenant: null', (m) => void (m.tenant = null as never), 'tenant'],
    ['metadata an array', (m) => void (m.tenant.metadata = []), 'tenant.metadata'],
    [
      'a checksum as a number',
      (m) => void (m.migrations[0].checksum = 42),
      'migrations[0].checksum',
    ],
    ['version 0', (m) => void (m.migrations[0].version = 0), 'migrations[0].version'],
    ['sequences missing', (m) => void delete (m as Partial<Manifest>).sequences, 'sequences'],
    ['isCalled as text', (m) => void (m.sequences[0].isCalled = 'true'), 'sequences[0].isCalled'],
    ['lastValue a number', (m) => void (m.sequences[0].lastValue = 2), 'sequences[0].lastValue'],
    ['fingerprint an object', (m) => void (m.fingerprint = {}), 'fingerprint'],
  ])('refuses a manifest with %s, naming the field and writing nothing', async (_, edit, field) => {
    const before = await footprint();
    const dir = await malformed(edit);
    const refused = service.import(dir, { id: `m${copies}` });
    await expect(refused).rejects.toBeInstanceOf(TenantImportError);
    await expect(refused).rejects.toMatchObject({ reason: 'format', field });
    await expect(refused).rejects.toThrow(`field ${field} `);
    expect(await footprint()).toEqual(before);
  });

  it('refuses a manifest wrapped in another object, or not an object at all', async () => {
    const before = await footprint();
    for (const edit of [(m: Manifest) => ({ manifest: m }), () => null, () => [1]]) {
      const refused = service.import(await malformed(edit), { id: `m${copies}` });
      await expect(refused).rejects.toMatchObject({ reason: 'format', field: undefined });
      await expect(refused).rejects.toThrow(/is not a tenant export manifest/);
    }
    expect(await footprint()).toEqual(before);
  });

  it('creates missing parents of an export path, as mkdir -p does', async () => {
    const path = join(work, 'backups', 'daily', 'alpha');
    const written = await service.export('alpha', path);
    expect(written).toMatchObject({ path, tables: 2 });
    expect((await readdir(path)).sort()).toEqual(['data', 'manifest.json']);
    const back = await service.import(path, { id: 'beta' });
    expect(back).toMatchObject({ id: 'beta', status: 'active' });
  });

  it('never writes into an existing path, and says so', async () => {
    const path = join(work, 'taken');
    await mkdir(path);
    await writeFile(join(path, 'keep.txt'), 'mine');
    const refused = service.export('alpha', path);
    await expect(refused).rejects.toBeInstanceOf(TenantExportError);
    await expect(refused).rejects.toThrow(/the path already exists/);
    expect(await readdir(path)).toEqual(['keep.txt']);
    // A file in the way of a parent: the true reason, not "already exists".
    await expect(service.export('alpha', join(path, 'keep.txt', 'alpha'))).rejects.toThrow(
      /cannot create its parent directory .*keep\.txt/,
    );
  });

  it('removes the parents it created when the export fails', async () => {
    const parent = join(work, 'fresh');
    await expect(service.export('nobody', join(parent, 'deep', 'x'))).rejects.toBeInstanceOf(
      TenantNotFoundError,
    );
    expect(await readdir(work)).not.toContain('fresh');
  });
});
