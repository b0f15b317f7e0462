// What a schema still needs after ALTER SCHEMA … RENAME: its functions' text pointed at the new
// name.
import type pg from 'pg';
import { withSearchPath } from '../connection/sessions.js';
import { namesSchema, repointFunctionDef } from './schema-references.js';
import { TARGET } from './script-target.js';

/**
 * What a copy of `schema` renamed to another name still needs (its target left as a placeholder
 * for `scriptFor`): the functions that name the schema as text, re-created as the clone script
 * creates them. See {@link repointScript}.
 */
export function renameScript(client: pg.ClientBase, schema: string): Promise<string> {
  return repointScript(client, schema, schema, TARGET);
}

/**
 * The statements that re-create the functions and procedures of `schema` that name schema
 * `from` as text, with `from` replaced by `to` (a schema's name, or the placeholder `TARGET`):
 * in the body (`from.x`, `"from".x`, a search_path string) and in `SET search_path`, whatever
 * its quoting and however many schemas it lists. Renaming a schema re-points everything
 * PostgreSQL stores by oid (views, defaults, constraints, triggers, SQL-standard function
 * bodies) but not this text, so a function would go on using the old name: the tables of
 * whatever schema has it next. `''` when nothing names `from`.
 */
export async function repointScript(
  client: pg.ClientBase,
  schema: string,
  from: string,
  to: string,
): Promise<string> {
  return withSearchPath(client, 'pg_catalog', async () => {
    const { rows } = await client.query<{ def: string; atomic: boolean; config: string }>(
      `SELECT pg_catalog.pg_get_functiondef(p.oid) AS def, p.prosqlbody IS NOT NULL AS atomic,
              coalesce(pg_catalog.array_to_string(p.proconfig, E'\\n'), '') AS config
         FROM pg_catalog.pg_proc p
        WHERE p.pronamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1)
          AND p.prokind IN ('f', 'p') ORDER BY p.oid`,
      [schema],
    );
    // A SQL-standard body is bound by oid (it prints the current name, whatever that is): only
    // its settings can hold the name as text.
    const defs = rows.filter((r) => namesSchema(r.atomic ? r.config : r.def, from));
    if (defs.length === 0) return '';
    const out = ['SET LOCAL check_function_bodies = off'];
    for (const { def } of defs) out.push(repointFunctionDef(def, from, to));
    out.push('SET LOCAL check_function_bodies = on');
    return out.join(';\n') + ';\n';
  });
}
