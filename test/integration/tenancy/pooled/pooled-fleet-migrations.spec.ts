// Fleet migrations with both tiers: the pooled schema is migrated once for every pooled tenant,
// the fleet view reports pooled tenants with that schema's state, and its failure is reported
// once without holding back the schema tenants.
import { randomUUID } from 'node:crypto';
import { PooledMigrationError, PooledRoleUnsafeError } from '../../../../lib/tenancy/index.js';
import { useTenancyApps } from '../../../support/tenancy-apps.js';
import { write } from '../../../support/migrations.js';
import { dropRoleAfterAll } from '../../../support/roles.js';

const ROLE = `pooled_${randomUUID().slice(0, 8)}`;

describe('fleet migrations with the pooled tier', () => {
  const apps = useTenancyApps('tenancy');
  dropRoleAfterAll(ROLE);

  it('migrates the pooled schema once, reports its tenants with its state, and reports its failure once', async () => {
    const dir = await apps.folder({
      '001_items.sql': 'CREATE TABLE {{tables.items}} (id bigint PRIMARY KEY, name text);',
    });
    const options = { migrations: dir, pooled: { role: ROLE }, failOnMigrationError: false };
    let tenants = await apps.boot(options);
    await tenants.create('p1', { tier: 'pooled' });
    await tenants.create('p2', { tier: 'pooled' });
    await tenants.create('s1');

    // A new file: pending for every tenant, the pooled ones as the pooled schema's.
    await write(dir, { '002_notes.sql': 'ALTER TABLE {{tables.items}} ADD COLUMN note text;' });
    const before = await tenants.migrationStatus();
    expect(before.map((s) => [s.tenantId, s.tier, s.version, s.pending])).toEqual([
      ['p1', 'pooled', 1, 1],
      ['p2', 'pooled', 1, 1],
      ['s1', 'schema', 1, 1],
    ]);
    const summary = await tenants.migrateAll();
    expect(summary.pooled).toEqual({
      schema: 'tenancy_pooled',
      files: ['002_notes.sql'],
      tenants: 2,
      error: null,
    });
    // Pooled tenants are neither skipped nor applied one by one.
    expect(summary.applied).toEqual([{ tenantId: 's1', files: ['002_notes.sql'] }]);
    expect(summary.skipped).toBe(0);
    const after = await tenants.migrationStatus(['p1']);
    expect(after[0]).toMatchObject({ tier: 'pooled', version: 2, pending: 0, lastError: null });

    // The pooled schema's own history, not the rows' record of it: an edit there shows.
    const pooledHistory = 'tenancy_pooled.schema_migrations';
    const { rows } = await apps.admin.query(
      `SELECT checksum FROM ${pooledHistory} WHERE version = 2`,
    );
    await apps.admin.query(`UPDATE ${pooledHistory} SET checksum = 'edited' WHERE version = 2`);
    expect((await tenants.migrationStatus(['p2']))[0]).toMatchObject({ changed: true });
    expect((await tenants.migrationStatus(['s1']))[0]).toMatchObject({ changed: false });
    await apps.admin.query(`UPDATE ${pooledHistory} SET checksum = $1 WHERE version = 2`, [
      rows[0].checksum,
    ]);

    // A file that fails in the pooled schema only: one failure, the schema tenant migrated.
    await write(dir, {
      '003_fail.sql': `DO $$ BEGIN IF '{{schema}}' LIKE '%tenancy_pooled%' THEN RAISE EXCEPTION 'pooled boom'; END IF; END $$;`,
    });
    const failing = await tenants.migrateAll();
    expect(failing.pooled?.error?.message).toMatch(
      /pooled schema "tenancy_pooled" failed.*pooled boom/,
    );
    expect(failing.failed).toEqual([]);
    expect(failing.applied).toEqual([{ tenantId: 's1', files: ['003_fail.sql'] }]);
    const view = await tenants.migrationStatus();
    expect(view.map((s) => [s.tenantId, s.version, s.pending, s.lastError !== null])).toEqual([
      ['p1', 2, 1, true],
      ['p2', 2, 1, true],
      ['s1', 3, 0, false],
    ]);
    expect(view[0].lastError).toMatch(/pooled boom/);
    // A retry failing the same way writes no registry row (each write is a notice to every instance).
    const versions = "SELECT id, version FROM tenancy.tenants WHERE tier = 'pooled' ORDER BY id";
    const written = (await apps.admin.query(versions)).rows;
    expect((await tenants.migrateAll()).pooled?.error?.message).toMatch(/pooled boom/);
    expect((await apps.admin.query(versions)).rows).toEqual(written);

    // The same policy as one failing tenant at startup: failOnMigrationError stops the boot.
    await apps.closeApps();
    await expect(apps.boot({ ...options, failOnMigrationError: true })).rejects.toThrow(
      PooledMigrationError,
    );
    await apps.closeApps();

    // Fixed: the next run applies it and clears the failure on every pooled tenant.
    await write(dir, { '003_fail.sql': 'SELECT 1;' });
    await apps.admin.query('DELETE FROM tenant_s1.schema_migrations WHERE version = 3');
    tenants = await apps.boot(options);
    const fixed = await tenants.migrateAll();
    expect(fixed.pooled).toMatchObject({ files: [], error: null });
    expect((await tenants.migrationStatus()).map((s) => [s.version, s.lastError])).toEqual([
      [3, null],
      [3, null],
      [3, null],
    ]);
  });

  it('clears a failure of the pooled role once it is fixed, with the schema already up to date', async () => {
    const dir = await apps.folder({ '001_items.sql': 'CREATE TABLE {{tables.items}} (id int);' });
    const tenants = await apps.boot({ migrations: dir, pooled: { role: ROLE } });
    await tenants.create('p1', { tier: 'pooled' });
    await apps.admin.query(`ALTER ROLE ${ROLE} BYPASSRLS`);
    const unsafe = await tenants.migrateAll();
    expect(unsafe.pooled?.error).toBeInstanceOf(PooledMigrationError);
    expect(unsafe.pooled?.error?.cause).toBeInstanceOf(PooledRoleUnsafeError);
    expect((await tenants.migrationStatus())[0].lastError).toMatch(/BYPASSRLS/);
    await apps.admin.query(`ALTER ROLE ${ROLE} NOBYPASSRLS`);
    expect((await tenants.migrateAll()).pooled?.error).toBeNull();
    expect((await tenants.migrationStatus())[0]).toMatchObject({ pending: 0, lastError: null });
  });
});
