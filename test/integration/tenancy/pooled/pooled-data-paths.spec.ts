// Every data path of a pooled tenant's manager, the same calls as a schema tenant's: streams,
// bulk loads, Kysely, transactions with savepoints and other schemas, and exec. PostgreSQL does
// the holding (row-level security under the tier's role), though the login is a superuser.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Generated } from 'kysely';
import pg from 'pg';
import { BulkLoadColumnsError, BulkLoadRowError, SchemaDb } from '../../../../lib/index.js';
import { bareEnvironment } from '../../../../lib/core/query/query-environment.js';
import type { TenantService } from '../../../../lib/index.js';
import { kyselyFor } from '../../../../lib/kysely/index.js';
import { useTenancyApps } from '../../../support/tenancy-apps.js';
import { dropRoleAfterAll } from '../../../support/roles.js';

const ROLE = `pooled_${randomUUID().slice(0, 8)}`;
const MIGRATIONS = join(process.cwd(), 'sample-app/migrations/tenant');

interface ProjectsTable {
  id: Generated<string>;
  name: string;
  description: string;
}

describe("a pooled tenant's manager: every data path, held by PostgreSQL", () => {
  const apps = useTenancyApps('tenancy');
  let tenants: TenantService;
  let a: SchemaDb;
  let b: SchemaDb;
  dropRoleAfterAll(ROLE);

  beforeEach(async () => {
    tenants = await apps.boot({ migrations: MIGRATIONS, pooled: { role: ROLE } });
    await tenants.create('a', { tier: 'pooled' });
    await tenants.create('b', { tier: 'pooled' });
    await tenants.create('s');
    a = await tenants.db('a');
    b = await tenants.db('b');
    for (const [db, id] of [
      [a, 'a'],
      [b, 'b'],
    ] as const) {
      for (let i = 1; i <= 5; i++) {
        await db.execute('INSERT INTO {{tables.projects}} (name) VALUES ($1)', [`${id}${i}`]);
      }
    }
  });

  /** Tenant ids of the pooled projects, as an admin (bypassing RLS) sees them. */
  async function stored(): Promise<Record<string, string[]>> {
    const { rows } = await apps.admin.query<{ tenant_id: string; names: string[] }>(
      `SELECT tenant_id, array_agg(name ORDER BY name) AS names
         FROM tenancy_pooled.projects GROUP BY 1 ORDER BY 1`,
    );
    return Object.fromEntries(rows.map((r) => [r.tenant_id, r.names]));
  }

  /** Every connection of the app's pool, as a schema tenant sees it: the login role, no tenant. */
  async function poolIsClean(): Promise<void> {
    const s = await tenants.db('s');
    const seen = await Promise.all(
      Array.from({ length: 8 }, () =>
        s.fetchOne<{ login: boolean; tenant: string | null }>(
          `SELECT current_user = session_user AS login,
                  nullif(current_setting('tenancy.tenant_id', true), '') AS tenant, pg_sleep(0.01)`,
        ),
      ),
    );
    for (const row of seen) expect(row).toMatchObject({ login: true, tenant: null });
  }

  it('streams only its own rows, outside and inside a transaction, and leaves no role behind', async () => {
    const names: string[] = [];
    for await (const row of a.stream<{ name: string }>(
      'SELECT name FROM {{tables.projects}} ORDER BY name',
      [],
      { batchSize: 2 },
    )) {
      names.push(row.name);
    }
    expect(names).toEqual(['a1', 'a2', 'a3', 'a4', 'a5']);
    // An early exit ends the iteration's transaction too.
    for await (const row of b.stream<{ name: string }>('SELECT name FROM {{tables.projects}}')) {
      expect(row.name).toMatch(/^b/);
      break;
    }
    await poolIsClean();

    const inside = await a.transaction(async (tx) => {
      const seen: string[] = [];
      for await (const row of tx.stream<{ name: string; tenant_id: string }>(
        'SELECT name, tenant_id FROM {{tables.projects}} ORDER BY name',
        undefined,
        { batchSize: 2 },
      )) {
        seen.push(`${row.tenant_id}:${row.name}`);
        // Another schema's statement between two batches runs as the login role.
        expect(await tx.withSchema('public').fetchValue('SELECT current_user = session_user')).toBe(
          true,
        );
      }
      return seen;
    });
    expect(inside).toEqual(['a:a1', 'a:a2', 'a:a3', 'a:a4', 'a:a5']);
    await poolIsClean();
  });

  it('bulk loads with copyFrom() as scoped inserts: all or nothing, same result and errors', async () => {
    const rows = Array.from({ length: 2_500 }, (_, i) => [`bulk${i}`, `d${i}`]);
    expect(await a.copyFrom('projects', ['name', 'description'], rows)).toBe(2_500);
    expect(
      await b.copyFrom(
        '{{tables.projects}}',
        ['name', 'description'],
        Readable.from([{ name: 'streamed', description: '' }]),
      ),
    ).toBe(1);
    const counts = await apps.admin.query<{ tenant_id: string; n: number }>(
      'SELECT tenant_id, count(*)::int AS n FROM tenancy_pooled.projects GROUP BY 1 ORDER BY 1',
    );
    expect(counts.rows).toEqual([
      { tenant_id: 'a', n: 2_505 },
      { tenant_id: 'b', n: 6 },
    ]);

    // A bad row in the second INSERT: nothing of the load is kept.
    const bad = [...rows.slice(0, 1_500).map(([n]) => [`x${n}`, '']), ['short']];
    await expect(a.copyFrom('projects', ['name', 'description'], bad)).rejects.toThrow(
      BulkLoadRowError,
    );
    await expect(a.copyFrom('projects', ['nope'], [['x']])).rejects.toThrow(BulkLoadColumnsError);
    expect(await a.fetchValue('SELECT count(*)::int FROM {{tables.projects}}')).toBe(2_505);

    // In a transaction: a savepoint, so the caller may catch and go on.
    await a.transaction(async (tx) => {
      await expect(
        tx.copyFrom('projects', ['name'], [['ok'], [null]]), // NOT NULL violated by the server
      ).rejects.toMatchObject({ code: '23502' });
      expect(await tx.copyFrom('projects', ['name'], [['kept']])).toBe(1);
    });
    expect((await stored()).a).toContain('kept');
    expect((await stored()).a).not.toContain('ok');
    await poolIsClean();
  });

  it('runs Kysely queries and transactions in its scope, on the pooled tables', async () => {
    const k = kyselyFor<{ projects: ProjectsTable }>(a);
    const names = await k.selectFrom('projects').select('name').orderBy('name').execute();
    expect(names.map((r) => r.name)).toEqual(['a1', 'a2', 'a3', 'a4', 'a5']);
    await k.transaction().execute(async (trx) => {
      await trx.insertInto('projects').values({ name: 'k1', description: '' }).execute();
      // An update that forgets the tenant: the policy holds it to a's rows.
      await trx.updateTable('projects').set({ description: 'touched' }).execute();
    });
    expect(await k.deleteFrom('projects').where('name', '=', 'b1').execute()).toEqual([
      expect.objectContaining({ numDeletedRows: 0n }),
    ]);
    const { rows } = await apps.admin.query<{ tenant_id: string; touched: number }>(
      `SELECT tenant_id, count(*) FILTER (WHERE description = 'touched')::int AS touched
         FROM tenancy_pooled.projects GROUP BY 1 ORDER BY 1`,
    );
    expect(rows).toEqual([
      { tenant_id: 'a', touched: 6 },
      { tenant_id: 'b', touched: 0 },
    ]);
    expect((await stored()).b).toContain('b1');
  });

  it('joins one transaction across the tenant, a shared schema and savepoints', async () => {
    await apps.admin.query(
      'CREATE SCHEMA IF NOT EXISTS shared_accounts; CREATE TABLE IF NOT EXISTS shared_accounts.log (tenant text, who text)',
    );
    await tenants.run('a', async () =>
      a.transaction(async (tx) => {
        await tx.execute("INSERT INTO {{tables.projects}} (name) VALUES ('in-tx')");
        const shared = tx.withSchema('shared_accounts');
        await shared.execute('INSERT INTO {{tables.log}} VALUES ($1, current_user)', ['a']);
        // A manager of the same tenant, from elsewhere in the flow, joins the transaction.
        const joined = await (
          await tenants.db('a')
        ).fetchValue<number>('SELECT count(*)::int FROM {{tables.projects}}');
        expect(joined).toBe(6);
        await expect(
          tx.transaction(async (sp) => {
            await sp.execute('DELETE FROM {{tables.projects}}'); // forgets the tenant filter
            throw new Error('roll back to the savepoint');
          }),
        ).rejects.toThrow('roll back to the savepoint');
        // The rollback to the savepoint undid the scope set inside it: still held.
        expect(await tx.fetchValue('SELECT count(*)::int FROM {{tables.projects}}')).toBe(6);
        expect(await shared.fetchValue('SELECT current_user = session_user')).toBe(true);
        expect(await tx.fetchValue('SELECT current_user = session_user')).toBe(false);
      }),
    );
    const log = await apps.admin.query(
      'SELECT tenant, who = session_user AS login FROM shared_accounts.log',
    );
    expect(log.rows).toEqual([{ tenant: 'a', login: true }]);
    expect((await stored()).a).toContain('in-tx');
    expect((await stored()).b).toHaveLength(5);
    await poolIsClean();
  });

  it('refuses a row for another tenant every time, the same statement after as before', async () => {
    // A prepared statement whose Execute fails (the policy's WITH CHECK) stays prepared: parsing
    // it again on the same connection would fail with 42P05 instead.
    const insert = 'INSERT INTO {{tables.projects}} (tenant_id, name) VALUES ($1, $2)';
    const single = new pg.Pool({ connectionString: apps.database.current.url, max: 1 });
    try {
      const statements = { enabled: true, prepareThreshold: 1, inTransactions: true };
      const scope = { role: ROLE, tenantId: 'a' };
      const own = SchemaDb.pooled(
        bareEnvironment(single, statements),
        'tenancy_pooled',
        scope,
        'tenant_id',
      );
      for (const db of [a, own]) {
        for (let i = 0; i < 4; i++) {
          await expect(db.execute(insert, ['b', `stolen${i}`])).rejects.toMatchObject({
            code: '42501',
          });
        }
        expect(await db.execute(insert, ['a', 'own'])).toBe(1);
      }
    } finally {
      await single.end();
    }
    expect((await stored()).b).toHaveLength(5);
  });

  it("execs several statements in the tenant's scope, under the tier's role", async () => {
    const result = await tenants.exec(
      'a',
      `INSERT INTO {{tables.projects}} (name) VALUES ('exec1');
       UPDATE {{tables.projects}} SET description = 'exec';
       SELECT count(*)::int AS n, current_user AS who FROM {{tables.projects}}`,
    );
    expect(result.rows).toEqual([{ n: 6, who: ROLE }]);
    const { rows } = await apps.admin.query<{ tenant_id: string; n: number }>(
      `SELECT tenant_id, count(*)::int AS n FROM tenancy_pooled.projects
        WHERE description = 'exec' GROUP BY 1`,
    );
    expect(rows).toEqual([{ tenant_id: 'a', n: 6 }]);
    await poolIsClean();
  });
});
