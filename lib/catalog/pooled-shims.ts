// A later tenant migration file may declare a foreign key to a table an earlier file made, as
// written for a schema of its own: `REFERENCES {{tables.projects}} (id)`. In the pooled schema
// that table's keys are per tenant by then, `(tenant_id, id)`, and PostgreSQL accepts a foreign
// key only to a key of exactly its columns. So before such a file, each per-tenant key of the
// tables it references gets a unique index on its own columns (a shim) for the file's foreign
// keys to find; after the file the adaptation re-creates those foreign keys over the tenant
// column, and the shims are dropped, in the file's transaction.
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { qualifiedName, quoteIdentifier } from '../shared/identifiers.js';
import { PooledAdaptationError } from './pooled-adaptation.errors.js';

/** Names of shim indexes start with this; the adaptation leaves them alone. */
export const SHIM_PREFIX = 'pgt_shim_';

/** The tables a file's text names after `REFERENCES`, as `{{tables.x}}` placeholders. */
export function referencedTables(sql: string): string[] {
  const found = new Set<string>();
  for (const m of sql.matchAll(/\bREFERENCES\s+\{\{\s*tables\.([A-Za-z0-9_$]+)\s*\}\}/gi)) {
    found.add(m[1]);
  }
  return [...found];
}

/**
 * Adds a shim for every per-tenant key (`column` first, plain columns after) of `tables` in
 * `schema`, in the open transaction on `client`. Building one reads the table: values that
 * repeat across tenants (a tenant moved in with its own ids, say) cannot have one.
 *
 * @throws PooledAdaptationError (`reference`) naming the table when a shim cannot be built.
 */
export async function addKeyShims(
  client: pg.ClientBase,
  schema: string,
  tables: readonly string[],
  column: string,
): Promise<void> {
  if (tables.length === 0) return;
  const { rows } = await client.query<{ table: string; columns: string[] }>(
    `SELECT c.relname AS table,
            array(SELECT a.attname::text FROM unnest(x.indkey[1:x.indnkeyatts - 1]) WITH ORDINALITY k(n, o)
                    JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n
                   ORDER BY k.o) AS columns
       FROM pg_catalog.pg_index x
       JOIN pg_catalog.pg_class c ON c.oid = x.indrelid
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_catalog.pg_attribute t ON t.attrelid = x.indrelid AND t.attnum = x.indkey[0]
      WHERE n.nspname = $1 AND c.relname = ANY($2) AND x.indisunique AND x.indpred IS NULL
        AND t.attname = $3 AND x.indnkeyatts > 1 AND NOT (0 = ANY (x.indkey::int2[]))`,
    [schema, tables, column],
  );
  for (const { table, columns } of rows) {
    const digest = createHash('sha256')
      .update(`${table}(${columns.join(',')})`)
      .digest('hex');
    const name = `${SHIM_PREFIX}${digest.slice(0, 24)}`;
    const list = columns.map((c) => quoteIdentifier(c)).join(', ');
    try {
      await client.query('SAVEPOINT pgt_shim');
      await client.query(
        `CREATE UNIQUE INDEX IF NOT EXISTS ${quoteIdentifier(name)} ON ${qualifiedName(schema, table)} (${list})`,
      );
      await client.query('RELEASE SAVEPOINT pgt_shim');
    } catch (err) {
      await client.query('ROLLBACK TO SAVEPOINT pgt_shim');
      if ((err as { code?: string }).code !== '23505') throw err;
      throw new PooledAdaptationError(
        schema,
        table,
        'reference',
        `a migration file declares a foreign key to ${table} (${columns.join(', ')}), and those values repeat across pooled tenants, so no key on them alone can be built for it to name. ` +
          `Move the tenants whose ids repeat to the schema tier, or give the referenced columns values unique across tenants, then migrate again.`,
      );
    }
  }
}

/** Drops every shim of `schema`, in the open transaction on `client`. */
export async function dropKeyShims(client: pg.ClientBase, schema: string): Promise<void> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_catalog.pg_class c
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relkind = 'i' AND starts_with(c.relname, $2)`,
    [schema, SHIM_PREFIX],
  );
  for (const { name } of rows) await client.query(`DROP INDEX ${qualifiedName(schema, name)}`);
}
