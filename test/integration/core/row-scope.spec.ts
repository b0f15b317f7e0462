// A pooled tenant's manager: every statement carries the tenant's scope (the managed role and
// the tenant setting) in the same round trip, for its transaction only. PostgreSQL's row-level
// security does the holding, also with a superuser login (the embedded server's).
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { SchemaDb } from '../../../lib/index.js';
import { bareEnvironment } from '../../../lib/core/query/query-environment.js';
import { adminPool, useTestDatabase } from '../../support/database.js';

const ROLE = `scope_test_${randomUUID().slice(0, 8)}`;

describe('a pooled tenant manager sets its scope with every statement', () => {
  const database = useTestDatabase();
  let pool: pg.Pool;
  let single: pg.Pool;

  beforeAll(async () => {
    pool = adminPool(database.current.url, 4);
    single = adminPool(database.current.url, 1);
    await pool.query(`
      CREATE ROLE ${ROLE} NOLOGIN NOBYPASSRLS;
      CREATE SCHEMA shared;
      CREATE TABLE shared.notes (
        tenant_id text NOT NULL DEFAULT current_setting('tenancy.tenant_id'),
        id serial, body text NOT NULL, PRIMARY KEY (tenant_id, id));
      ALTER TABLE shared.notes ENABLE ROW LEVEL SECURITY;
      ALTER TABLE shared.notes FORCE ROW LEVEL SECURITY;
      CREATE POLICY tenant_isolation ON shared.notes
        USING (tenant_id = current_setting('tenancy.tenant_id', true))
        WITH CHECK (tenant_id = current_setting('tenancy.tenant_id', true));
      GRANT USAGE ON SCHEMA shared TO ${ROLE};
      GRANT SELECT, INSERT, UPDATE, DELETE ON shared.notes TO ${ROLE};
      GRANT USAGE ON SEQUENCE shared.notes_id_seq TO ${ROLE};
      CREATE SCHEMA private;
      CREATE TABLE private.secrets (v text);
      INSERT INTO private.secrets VALUES ('s');
      INSERT INTO shared.notes (tenant_id, body) VALUES ('a', 'a1'), ('b', 'b1');`);
  });
  afterAll(async () => {
    await single.end();
    await pool.end();
    // Its grants went with the test database; the role belongs to the server.
    const admin = new pg.Client(process.env.DATABASE_URL);
    await admin.connect();
    await admin.query(`DROP ROLE IF EXISTS ${ROLE}`);
    await admin.end();
  });

  const variants = [
    { name: 'unnamed statements', prepared: false },
    { name: 'managed prepared statements', prepared: true },
  ];
  describe.each(variants)('with $name', ({ prepared }) => {
    const manager = (p: pg.Pool, tenantId: string) =>
      SchemaDb.pooled(
        bareEnvironment(
          p,
          prepared && { enabled: true, prepareThreshold: 1, inTransactions: true },
        ),
        'shared',
        { role: ROLE, tenantId },
        'tenant_id',
      );

    it('reads and writes only its own rows, with and without parameters', async () => {
      const a = manager(pool, 'a');
      for (let i = 0; i < 3; i++) {
        expect(await a.fetchAll('SELECT body FROM {{tables.notes}}')).toEqual(
          expect.arrayContaining([{ body: 'a1' }]),
        );
        const all = await a.fetchAll<{ tenant_id: string }>(
          'SELECT tenant_id FROM {{tables.notes}} WHERE id > $1',
          [0],
        );
        expect(new Set(all.map((r) => r.tenant_id))).toEqual(new Set(['a']));
      }
      const inserted = await a.fetchOne<{ tenant_id: string }>(
        'INSERT INTO {{tables.notes}} (body) VALUES ($1) RETURNING tenant_id',
        ['a2'],
      );
      expect(inserted).toEqual({ tenant_id: 'a' });
      expect(await a.fetchValue('SELECT current_user')).toBe(ROLE);
    });

    it("refuses a row for another tenant and cannot touch another tenant's rows", async () => {
      const b = manager(pool, 'b');
      await expect(
        b.execute("INSERT INTO {{tables.notes}} (tenant_id, body) VALUES ('a', $1)", ['x']),
      ).rejects.toThrow(/row-level security/);
      expect(await b.execute("UPDATE {{tables.notes}} SET body = 'hacked'")).toBeGreaterThan(0);
      const aRows = await pool.query("SELECT body FROM shared.notes WHERE tenant_id = 'a'");
      expect(aRows.rows.map((r) => r.body)).not.toContain('hacked');
      await pool.query("UPDATE shared.notes SET body = 'b1' WHERE tenant_id = 'b'");
    });

    it('leaves nothing on the connection once a statement is done, also after a failure', async () => {
      const a = manager(single, 'a');
      expect(await a.fetchValue('SELECT current_setting($1, true)', ['tenancy.tenant_id'])).toBe(
        'a',
      );
      const after = await single.query<{ user: string; tenant: string | null }>(
        `SELECT current_user AS user, current_setting('tenancy.tenant_id', true) AS tenant`,
      );
      expect(after.rows[0].user).not.toBe(ROLE);
      expect(after.rows[0].tenant || null).toBeNull();
      await expect(
        a.fetchAll('SELECT nonsense FROM {{tables.notes}} WHERE id = $1', [1]),
      ).rejects.toThrow(/nonsense/);
      await expect(a.fetchAll('SELEC broken')).rejects.toThrow(/syntax/);
      const again = await single.query<{ user: string }>('SELECT current_user AS user');
      expect(again.rows[0].user).not.toBe(ROLE);
      // The connection goes on serving, scoped, after both failures.
      expect(
        await a.fetchValue('SELECT count(*)::int FROM {{tables.notes}} WHERE id > $1', [0]),
      ).toBeGreaterThan(0);
    });

    it('names its scope statement only when statements are prepared, and survives DEALLOCATE ALL', async () => {
      const a = manager(single, 'a');
      expect(await a.fetchValue('SELECT 1 FROM {{tables.notes}} LIMIT $1', [1])).toBe(1);
      // Behind a pooler prepared statements are off: a named statement could be on another
      // server connection by the next transaction, so the scope is parsed unnamed every time.
      const named = await single.query(
        "SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name = 'pgt_row_scope'",
      );
      expect(named.rows[0].n).toBe(prepared ? 1 : 0);
      await single.query('DEALLOCATE ALL');
      // Prepared: the stale statement is re-prepared and run again at once.
      expect(await a.fetchValue('SELECT 1 FROM {{tables.notes}} LIMIT $1', [1])).toBe(1);
      expect(await a.fetchValue('SELECT 1 FROM {{tables.notes}} LIMIT $1', [1])).toBe(1);
    });

    it('in a transaction, each statement is scoped, and an unscoped manager runs as the login role', async () => {
      const a = manager(pool, 'a');
      const result = await a.transaction(async (tx) => {
        await tx.execute('RESET ROLE');
        const own = await tx.fetchAll<{ tenant_id: string }>(
          'SELECT tenant_id FROM {{tables.notes}}',
        );
        const secret = await tx
          .withSchema('private')
          .fetchValue('SELECT v FROM {{tables.secrets}}');
        const ownAgain = await tx.fetchValue<number>(
          "SELECT count(*)::int FROM {{tables.notes}} WHERE tenant_id <> 'a'",
        );
        return { own, secret, ownAgain };
      });
      expect(new Set(result.own.map((r) => r.tenant_id))).toEqual(new Set(['a']));
      expect(result.secret).toBe('s');
      expect(result.ownAgain).toBe(0);
    });
  });
});
