// The registry's view is loaded a page at a time from one snapshot, with its own lean reading of
// each row: every page arrives, and every field reads as the row-by-row path reads it.
import pg from 'pg';
import {
  readSnapshot,
  SNAPSHOT_PAGE_ROWS,
} from '../../../../lib/tenancy/registry/registry-snapshot.js';
import { useTenancyApps } from '../../../support/tenancy-apps.js';

describe('the registry snapshot', () => {
  const apps = useTenancyApps('snap');

  it('loads every page, and reads each row as a point read does', async () => {
    const tenants = await apps.boot({});
    const count = 2 * SNAPSHOT_PAGE_ROWS + 1;
    await apps.admin.query(
      `INSERT INTO snap.tenants (id, schema_name, status, tier, migrated_version, metadata,
                                 created_at, last_migrated_at, last_error)
       SELECT id, 'tenant_' || id, CASE WHEN g % 7 = 0 THEN 'suspended' ELSE 'active' END,
              CASE WHEN g % 3 = 0 THEN 'schema' ELSE 'pooled' END, g % 5,
              CASE WHEN g % 2 = 0 THEN jsonb_build_object('plan', 'free', 'n', g) ELSE '{}' END,
              timestamptz '2026-03-01 12:34:56.789123+02' + g * interval '1 second 1 microsecond',
              CASE WHEN g % 4 = 0 THEN timestamptz '1999-12-31 23:59:59.9999+00' END,
              CASE WHEN g % 9 = 0 THEN 'failed: ' || g END
         FROM generate_series(0, $1 - 1) g, LATERAL (SELECT 'k' || lpad(g::text, 6, '0') AS id) i`,
      [count],
    );
    const listed = await tenants.list();
    expect(listed).toHaveLength(count);
    expect(listed.at(-1)!.id).toBe(`k${String(count - 1).padStart(6, '0')}`);

    const { rows } = await apps.admin.query<Record<string, unknown>>(
      `SELECT id, schema_name, status, tier, metadata, created_at, migrated_version,
              last_migrated_at, last_error, version::float8 AS version
         FROM snap.tenants WHERE id IN ('k000000', 'k000004', 'k000009', 'k005000', 'k010000')
        ORDER BY id`,
    );
    for (const row of rows) {
      const info = listed.find((t) => t.id === row.id)!;
      expect(info).toEqual({
        id: row.id,
        schema: row.schema_name,
        status: row.status,
        tier: row.tier,
        metadata: row.metadata,
        createdAt: row.created_at,
        migratedVersion: row.migrated_version,
        lastMigratedAt: row.last_migrated_at,
        lastError: row.last_error,
        version: row.version,
      });
    }
    // A pooled tenant's manager, built when first asked for, is held to the tenant.
    const pooled = listed.find((t) => t.tier === 'pooled' && t.status === 'active')!;
    expect((await tenants.db(pooled.id)).pooledTenantId).toBe(pooled.id);
  });

  // CI once saw the snapshot's connection ended (DROP DATABASE … WITH (FORCE)) between two of its
  // statements: pg-pool listens only to idle clients, so the error was unhandled.
  it('survives its backend ending between two statements, and discards that connection', async () => {
    await apps.boot({});
    const pool = new pg.Pool({ connectionString: apps.database.current.url, max: 1 });
    pool.on('error', () => undefined);
    let ended = false;
    pool.once('acquire', (client: pg.PoolClient) => {
      const send = client.query.bind(client) as (text: string) => Promise<unknown>;
      // The first statement waits until the server has ended the session and the socket closed:
      // the error arrives while the client is checked out with no statement running.
      (client as unknown as { query: (text: string) => Promise<unknown> }).query = async (text) => {
        const gone = new Promise((resolve) => client.once('end', resolve));
        const pid = (client as unknown as { processID: number }).processID;
        await apps.admin.query('SELECT pg_terminate_backend($1)', [pid]);
        await gone;
        ended = true;
        return send(text);
      };
    });
    const pages: unknown[] = [];
    try {
      await expect(
        readSnapshot(
          pool,
          'snap.tenants',
          (rows) => pages.push(rows),
          () => Promise.resolve([]),
        ),
      ).rejects.toThrow(/not queryable|terminat/);
      expect(ended).toBe(true);
      // Not given back to serve others.
      expect(pool.totalCount).toBe(0);
      await readSnapshot(
        pool,
        'snap.tenants',
        (rows) => pages.push(rows),
        () => Promise.resolve([]),
      );
      expect(pages).toEqual([]);
    } finally {
      await pool.end();
    }
  });
});
