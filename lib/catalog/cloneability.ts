// Whether the clone script reproduces everything a schema holds.
import type pg from 'pg';
import { qualifiedName } from '../shared/identifiers.js';
import { COMMENT_KEYWORDS, COMMENTS, RELATIONS, idParams, type SchemaIds } from './catalog-sql.js';

/** Objects whose kind the script reproduces; anything else in the schema makes it uncloneable. */
const CLONED_KINDS = new Set(['table', 'sequence', 'view', 'function', 'procedure', 'index']);

/**
 * Why the schema holds something the clone script would not reproduce (an object of another
 * kind, row-level security, inheritance, rules, extension members, another owner, a row that
 * names the schema), or `undefined` when it holds nothing of the kind.
 */
export async function uncloneableReason(
  client: pg.ClientBase,
  schema: string,
  ids: SchemaIds,
): Promise<string | undefined> {
  const { rows } = await client.query<{ reason: string }>(
    `WITH rels AS (${RELATIONS})
     SELECT o.type || ' ' || o.identity AS reason
       FROM pg_catalog.pg_depend d
       CROSS JOIN LATERAL pg_catalog.pg_identify_object(d.classid, d.objid, d.objsubid) o
      WHERE d.refclassid = 'pg_catalog.pg_namespace'::regclass AND d.refobjid = $1::int8::oid
        AND d.deptype = 'n' AND o.type <> ALL ($3::text[])
     UNION ALL SELECT 'relation ' || relname || ' of kind ' || relkind::text FROM rels
      WHERE relkind NOT IN ('r', 'S', 'i', 'v') OR reloftype <> 0
     UNION ALL SELECT 'row level security on ' || relname FROM rels
      WHERE relrowsecurity OR relforcerowsecurity
     UNION ALL SELECT 'inheritance of ' || c.relname FROM pg_catalog.pg_inherits i
       JOIN rels c ON c.oid = i.inhrelid OR c.oid = i.inhparent
     UNION ALL SELECT 'rule ' || r.rulename FROM pg_catalog.pg_rewrite r JOIN rels c ON c.oid = r.ev_class
      WHERE r.rulename <> '_RETURN'
     UNION ALL SELECT 'extension member ' || c.relname FROM pg_catalog.pg_depend d JOIN rels c ON c.oid = d.objid
      WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.deptype = 'e'
     UNION ALL SELECT 'extension member ' || p.proname FROM pg_catalog.pg_depend d
       JOIN pg_catalog.pg_proc p ON p.oid = d.objid
      WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.deptype = 'e' AND p.pronamespace = $1::int8::oid
     UNION ALL SELECT 'aggregate or window function ' || proname FROM pg_catalog.pg_proc
      WHERE pronamespace = $1::int8::oid AND prokind NOT IN ('f', 'p')
     UNION ALL SELECT 'object owned by ' || pg_catalog.pg_get_userbyid(relowner) || ': ' || relname FROM rels
      WHERE relowner <> (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
     UNION ALL SELECT 'function owned by ' || pg_catalog.pg_get_userbyid(proowner) || ': ' || proname
       FROM pg_catalog.pg_proc
      WHERE pronamespace = $1::int8::oid
        AND proowner <> (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
     UNION ALL SELECT 'comment on ' || type FROM (${COMMENTS}) c WHERE type <> ALL ($4::text[])
     LIMIT 1`,
    [...idParams(ids), [...CLONED_KINDS], Object.keys(COMMENT_KEYWORDS)],
  );
  if (rows[0]) return rows[0].reason;
  // Seed rows naming the schema itself would name the template in every clone.
  const tables = await client.query<{ name: string }>(
    `WITH rels AS (${RELATIONS}) SELECT relname AS name FROM rels WHERE relkind = 'r' ORDER BY oid`,
    idParams(ids),
  );
  for (const { name } of tables.rows) {
    const found = await client.query(
      `SELECT 1 FROM ${qualifiedName(schema, name)} x WHERE x::text LIKE $1 LIMIT 1`,
      [`%${schema.replace(/[\\%_]/g, '\\$&')}%`],
    );
    if (found.rowCount) return `a row of table ${name} contains the schema name`;
  }
  return undefined;
}
