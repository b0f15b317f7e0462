// TenantService.exec(): SQL run in a tenant as one transaction, and text that would commit or
// split that transaction refused before the tenant is touched (what `tenants exec` runs).
import pg from 'pg';
import { openTenancy } from '../../../lib/cli/tenancy-cli.js';
import type { TenantService } from '../../../lib/index.js';
import { TenantExecTransactionControlError } from '../../../lib/tenancy/index.js';
import { adminPool, useTestDatabase } from '../../support/database.js';
import { useMigrationFolders } from '../../support/migrations.js';
import { jest } from '@jest/globals';

jest.setTimeout(60_000);

describe('TenantService.exec', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;
  let service: TenantService;
  let tenancy: { service: TenantService; end(): Promise<void> } | undefined;
  let tenancyMigrations: string;

  beforeAll(async () => {
    admin = adminPool(database.current.url);
    tenancyMigrations = await folder({
      '001_items.sql':
        'CREATE TABLE {{tables.items}} (n int); INSERT INTO {{tables.items}} VALUES (1);',
    });
    tenancy = await openTenancy({
      connection: database.current.url,
      tenancy: { migrations: tenancyMigrations, registrySchema: 'exec_reg', schemaPrefix: 'exec_' },
    });
    service = tenancy.service;
    await service.create('t1');
  });
  afterAll(async () => {
    await tenancy?.end();
    await admin?.end();
  });

  const items = async () =>
    (await admin.query<{ n: number[] }>('SELECT array_agg(n ORDER BY n) AS n FROM exec_t1.items'))
      .rows[0].n;

  it('runs every statement in one transaction and returns the last result', async () => {
    const result = await service.exec(
      't1',
      'UPDATE {{tables.items}} SET n = n + 1;\nSELECT n FROM {{tables.items}}',
    );
    expect(result).toEqual({ rowCount: 1, rows: [{ n: 2 }] });
    // A failure after the first statement keeps nothing of the text.
    await expect(
      service.exec('t1', 'UPDATE {{tables.items}} SET n = n + 1; SELECT 1/0'),
    ).rejects.toThrow(/division by zero/);
    expect(await items()).toEqual([2]);
  });

  it.each([
    [
      'UPDATE {{tables.items}} SET n = n + 10;\nCOMMIT;\nUPDATE {{tables.items}} SET n = 1/0;',
      'COMMIT',
      2,
    ],
    ['BEGIN;\nUPDATE {{tables.items}} SET n = n + 10;\nCOMMIT;\nSELECT 1/0;', 'BEGIN', 1],
    ['update {{tables.items}} set n = 5; commit; select 1/0', 'COMMIT', 1],
    ['-- a fix\nStart Transaction;\nUPDATE {{tables.items}} SET n = 5;', 'START TRANSACTION', 2],
    ['UPDATE {{tables.items}} SET n = 5; end; SELECT 1/0', 'END', 1],
    ['UPDATE {{tables.items}} SET n = 5;\nROLLBACK', 'ROLLBACK', 2],
    ['UPDATE {{tables.items}} SET n = 5; ABORT', 'ABORT', 1],
    ['SAVEPOINT a; UPDATE {{tables.items}} SET n = 5; RELEASE a', 'SAVEPOINT', 1],
    ['UPDATE {{tables.items}} SET n = 5; release savepoint a', 'RELEASE', 1],
    ["UPDATE {{tables.items}} SET n = 5; PREPARE TRANSACTION 'fix'", 'PREPARE TRANSACTION', 1],
    ["COMMIT PREPARED 'fix'", 'COMMIT PREPARED', 1],
    ["ROLLBACK PREPARED 'fix'", 'ROLLBACK PREPARED', 1],
  ])('refuses %j before touching the tenant', async (sql, statement, line) => {
    const before = await items();
    const refused = service.exec('t1', sql);
    await expect(refused).rejects.toBeInstanceOf(TenantExecTransactionControlError);
    await expect(refused).rejects.toMatchObject({ statement, line });
    expect(await items()).toEqual(before);
    // Refused before the registry is asked: an unknown tenant gets the same answer.
    await expect(service.exec('nobody', sql)).rejects.toBeInstanceOf(
      TenantExecTransactionControlError,
    );
  });

  it('runs transaction keywords inside strings, comments, dollar quotes and atomic bodies', async () => {
    const result = await service.exec(
      't1',
      [
        "-- COMMIT; BEGIN;\nSELECT 'COMMIT; ROLLBACK' AS s; /* END; */",
        'DO $$ BEGIN PERFORM 1; END $$;',
        'CREATE FUNCTION {{schema}}.one() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;',
        'SELECT {{schema}}.one() AS one, $q$ COMMIT $q$ AS q',
      ].join('\n'),
    );
    expect(result.rows).toEqual([{ one: 1, q: ' COMMIT ' }]);
  });

  it('leaves no session setting on the pooled connection', async () => {
    // One connection, so the next query shares the exec's connection.
    const single = await openTenancy({
      connection: database.current.url,
      pool: { max: 1 },
      tenancy: { migrations: tenancyMigrations, registrySchema: 'exec_reg', schemaPrefix: 'exec_' },
    });
    try {
      const db = await single.service.db('t1');
      const before = await db.fetchValue('SHOW search_path');
      await single.service.exec(
        't1',
        "SET search_path = {{schema}}; SELECT set_config('application_name', 'exec', false)",
      );
      expect(await db.fetchValue('SHOW search_path')).toBe(before);
      expect(await db.fetchValue('SHOW application_name')).not.toBe('exec');
    } finally {
      await single.end();
    }
  });
});
