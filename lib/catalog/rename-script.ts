// What a copy of a schema still needs after ALTER SCHEMA … RENAME.
import type pg from 'pg';
import { withSearchPath } from '../connection/sessions.js';
import { quoteIdentifier } from '../shared/identifiers.js';
import { TARGET } from './script-target.js';

/**
 * What a copy of `schema` renamed to another name still needs (its target left as a placeholder
 * for `scriptFor`): the functions whose text names the schema, re-created as the clone
 * script creates them. Renaming a schema re-points everything PostgreSQL stores by oid (views,
 * defaults, constraints, triggers, SQL-standard function bodies) but not function source text.
 */
export async function renameScript(client: pg.ClientBase, schema: string): Promise<string> {
  return withSearchPath(client, 'pg_catalog', async () => {
    const { rows } = await client.query<{ def: string }>(
      `SELECT pg_catalog.pg_get_functiondef(p.oid) AS def FROM pg_catalog.pg_proc p
        WHERE p.pronamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1)
          AND p.prosqlbody IS NULL ORDER BY p.oid`,
      [schema],
    );
    const source = quoteIdentifier(schema);
    const defs = rows.filter((r) => r.def.includes(source));
    if (defs.length === 0) return '';
    const out = ['SET LOCAL check_function_bodies = off'];
    for (const { def } of defs) out.push(def.replaceAll(source, TARGET));
    out.push('SET LOCAL check_function_bodies = on');
    return out.join(';\n') + ';\n';
  });
}
