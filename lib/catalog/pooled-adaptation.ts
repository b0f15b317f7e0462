// STAND-IN until the catalog branch lands (issue #25): the tenant column, row-level security and
// grants only; keys are not made per tenant yet. Replaced wholesale by that branch.
import type pg from 'pg';
import { quoteIdentifier } from '../shared/identifiers.js';
import { MIGRATIONS_TABLE } from '../migrations/migration-history.js';

/** What the pooled tier adds to each table of its schema. */
export interface PooledAdaptationOptions {
  readonly column: string;
  readonly role: string;
}

/** Adapts every table of `schema` for sharing by tenants, in the caller's transaction. */
export async function adaptPooledSchema(
  client: pg.ClientBase,
  schema: string,
  { column, role }: PooledAdaptationOptions,
): Promise<void> {
  const { rows } = await client.query<{ name: string; has: boolean; policy: boolean }>(
    `SELECT c.relname AS name,
            EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = $2) AS has,
            EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid) AS policy
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname <> $3`,
    [schema, column, MIGRATIONS_TABLE],
  );
  const s = quoteIdentifier(schema);
  const col = quoteIdentifier(column);
  const check = `${col} = current_setting('tenancy.tenant_id', true)`;
  for (const { name, has, policy } of rows) {
    const t = `${s}.${quoteIdentifier(name)}`;
    if (!has) {
      await client.query(
        `ALTER TABLE ${t} ADD COLUMN ${col} text NOT NULL;
         ALTER TABLE ${t} ALTER COLUMN ${col} SET DEFAULT current_setting('tenancy.tenant_id')`,
      );
    }
    await client.query(`ALTER TABLE ${t} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY`);
    if (!policy) {
      await client.query(
        `CREATE POLICY tenant_isolation ON ${t} FOR ALL USING (${check}) WITH CHECK (${check})`,
      );
    }
  }
  const r = quoteIdentifier(role);
  await client.query(`GRANT USAGE ON SCHEMA ${s} TO ${r};
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${s} TO ${r};
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ${s} TO ${r}`);
}
