// A recorded migration failure holds only while the tenant is behind the files: once the failing
// file is gone (deleted, or the tenant is up to date with the files as they are), the fleet view
// stops reporting it and the next run, `retryFailed` included, clears it.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { openTenancy } from '../../../../lib/cli/tenancy-cli.js';
import type { TenantService } from '../../../../lib/index.js';
import { adminPool, useTestDatabase } from '../../../support/database.js';
import { useMigrationFolders, write } from '../../../support/migrations.js';
import { jest } from '@jest/globals';

jest.setTimeout(60_000);

describe('fleet migration failures of files since removed', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;
  let tenancy: { service: TenantService; end(): Promise<void> } | undefined;
  let service: TenantService;
  let migrations: string;

  beforeAll(async () => {
    admin = adminPool(database.current.url);
    migrations = await folder({ '001_items.sql': 'CREATE TABLE {{tables.items}} (id int);' });
    tenancy = await openTenancy({
      connection: database.current.url,
      tenancy: { migrations, registrySchema: 'ffail_reg', schemaPrefix: 'ffail_' },
    });
    service = tenancy.service;
    for (const id of ['a', 'b', 'c']) await service.create(id);
  });
  afterAll(async () => {
    await tenancy?.end();
    await admin?.end();
  });

  const recorded = async () =>
    (
      await admin.query<{ id: string; last_error: string | null }>(
        'SELECT id, last_error FROM ffail_reg.tenants ORDER BY id',
      )
    ).rows;

  it('stops reporting the failure of a deleted file, and the next run clears it', async () => {
    await write(migrations, { '002_broken.sql': 'SELECT 1/0;' });
    const failing = await service.migrateAll();
    expect(failing.failed.map((f) => f.tenantId).sort()).toEqual(['a', 'b', 'c']);
    expect((await service.migrationStatus()).map((s) => s.lastError)).toEqual([
      expect.stringMatching(/division by zero/),
      expect.stringMatching(/division by zero/),
      expect.stringMatching(/division by zero/),
    ]);
    // A file on disk but not yet fixed: still behind, still reported.
    await write(migrations, { '002_broken.sql': 'SELECT 1/0; -- still broken' });
    expect((await service.migrationStatus(['a']))[0].lastError).toMatch(/division by zero/);

    // The user's fix: delete the failing file. Every tenant is up to date with the files now.
    await rm(join(migrations, '002_broken.sql'));
    const states = await service.migrationStatus();
    expect(states.map((s) => [s.tenantId, s.version, s.pending, s.lastError])).toEqual([
      ['a', 1, 0, null],
      ['b', 1, 0, null],
      ['c', 1, 0, null],
    ]);

    // --retry-failed clears what it finds settled among the tenants it covers.
    const retried = await service.migrateAll({ retryFailed: true, tenants: ['a'] });
    expect(retried).toMatchObject({ applied: [], failed: [], skipped: 1 });
    expect(await recorded()).toEqual([
      { id: 'a', last_error: null },
      { id: 'b', last_error: expect.stringMatching(/division by zero/) as unknown },
      { id: 'c', last_error: expect.stringMatching(/division by zero/) as unknown },
    ]);
    // So does any run, as start-up's.
    expect(await service.migrateAll()).toMatchObject({ failed: [], skipped: 3 });
    expect((await recorded()).map((r) => r.last_error)).toEqual([null, null, null]);
    expect((await service.get('b'))?.lastError).toBeNull();
  });
});
