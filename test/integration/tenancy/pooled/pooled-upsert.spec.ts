// The same upsert code for a pooled tenant as for a schema tenant: `ON CONFLICT (email)` infers
// the per-tenant key `(tenant_id, email)` of the pooled table, through SQL, Kysely and
// insertMany, and a conflict is only ever with the tenant's own row.
import { randomUUID } from 'node:crypto';
import type { Generated } from 'kysely';
import type { SchemaDb, TenantService } from '../../../../lib/index.js';
import { kyselyFor } from '../../../../lib/kysely/index.js';
import { useTenancyApps } from '../../../support/tenancy-apps.js';
import { dropRoleAfterAll } from '../../../support/roles.js';

const ROLE = `pooled_${randomUUID().slice(0, 8)}`;

const FILES = {
  '001_users.sql': `
    CREATE TABLE {{tables.users}} (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      email text NOT NULL UNIQUE,
      name text NOT NULL
    );
    CREATE TABLE {{tables.slugs}} (slug text NOT NULL, hits int NOT NULL DEFAULT 1);
    CREATE UNIQUE INDEX slugs_lower ON {{tables.slugs}} (lower(slug));`,
};

interface Database {
  users: { id: Generated<string>; email: string; name: string };
}

describe('upserts of a pooled tenant, the same code as a schema tenant', () => {
  const apps = useTenancyApps('tenancy');
  dropRoleAfterAll(ROLE);
  let tenants: TenantService;
  let dbs: Record<'a' | 'b' | 's', SchemaDb>;

  beforeEach(async () => {
    const migrations = await apps.folder(FILES);
    tenants = await apps.boot({ migrations, pooled: { role: ROLE } });
    await tenants.create('a', { tier: 'pooled' });
    await tenants.create('b', { tier: 'pooled' });
    await tenants.create('s');
    dbs = { a: await tenants.db('a'), b: await tenants.db('b'), s: await tenants.db('s') };
  });

  /** Each tenant's users as name by email, the pooled ones read by an admin around RLS. */
  async function stored(): Promise<Record<string, Record<string, string>>> {
    const { rows } = await apps.admin.query<{ tenant: string; email: string; name: string }>(
      `SELECT tenant_id AS tenant, email, name FROM tenancy_pooled.users
       UNION ALL SELECT 's', email, name FROM tenant_s.users ORDER BY 1, 2`,
    );
    const out: Record<string, Record<string, string>> = {};
    for (const r of rows) (out[r.tenant] ??= {})[r.email] = r.name;
    return out;
  }

  it('ON CONFLICT (column) in SQL: inserts, then updates only its own row', async () => {
    const upsert = (db: SchemaDb, email: string, name: string) =>
      db.fetchValue<string>(
        `INSERT INTO {{tables.users}} AS u (email, name) VALUES ($1, $2)
         ON CONFLICT (email) DO UPDATE SET name = u.name || '+' || EXCLUDED.name
         RETURNING name`,
        [email, name],
      );
    for (const id of ['a', 'b', 's'] as const) {
      expect(await upsert(dbs[id], 'x@example.com', `${id}1`)).toBe(`${id}1`);
    }
    // The second round conflicts, each tenant with its own row only.
    for (const id of ['a', 'b', 's'] as const) {
      expect(await upsert(dbs[id], 'x@example.com', `${id}2`)).toBe(`${id}1+${id}2`);
    }
    expect(await stored()).toEqual({
      a: { 'x@example.com': 'a1+a2' },
      b: { 'x@example.com': 'b1+b2' },
      s: { 'x@example.com': 's1+s2' },
    });

    // An expression index, inside a transaction.
    for (const id of ['a', 'b', 's'] as const) {
      await dbs[id].transaction(async (tx) => {
        for (const slug of ['Home', 'HOME', 'home']) {
          await tx.execute(
            `INSERT INTO {{tables.slugs}} AS s (slug) VALUES ($1)
             ON CONFLICT ((lower(slug))) DO UPDATE SET hits = s.hits + 1`,
            [slug],
          );
        }
      });
      expect(await dbs[id].fetchAll('SELECT slug, hits FROM {{tables.slugs}}')).toEqual([
        { slug: 'Home', hits: 3 },
      ]);
    }
  });

  it('Kysely onConflict and insertMany onConflict.target', async () => {
    for (const id of ['a', 'b', 's'] as const) {
      const k = kyselyFor<Database>(dbs[id]);
      for (const name of ['first', 'second']) {
        await k
          .insertInto('users')
          .values({ email: 'k@example.com', name: `${id} ${name}` })
          .onConflict((oc) => oc.column('email').doUpdateSet({ name: `${id} ${name}` }))
          .execute();
      }
      await dbs[id].insertMany('users', [{ email: 'm@example.com', name: `${id} m1` }], {
        onConflict: { target: ['email'], action: 'update' },
      });
      await dbs[id].insertMany('users', [{ email: 'm@example.com', name: `${id} m2` }], {
        onConflict: { target: ['email'], action: 'update' },
      });
    }
    expect(await stored()).toEqual(
      Object.fromEntries(
        ['a', 'b', 's'].map((id) => [
          id,
          { 'k@example.com': `${id} second`, 'm@example.com': `${id} m2` },
        ]),
      ),
    );
  });
});
