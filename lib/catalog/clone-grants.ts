// The privileges part of the clone script: exactly the source's grants, on the target's objects.
import { RELATIONS } from './catalog-sql.js';
import { UncloneableSchemaError } from './catalog.errors.js';
import type { CloneSource } from './clone-source.js';
import { TARGET } from './script-target.js';

interface GrantRow {
  kind: string;
  identity: string;
  columns: string | null;
  grants: { grantee: string; privilege: string; grantable: boolean; foreign: boolean }[];
}

/**
 * `REVOKE ALL` then `GRANT` statements that give the target's schema, relations, columns and
 * functions the privileges the source's have.
 *
 * @throws UncloneableSchemaError for a privilege granted by another role than the owner (the
 *   script, run by the owner, could not grant it in that role's name).
 */
export async function cloneGrants(source: CloneSource): Promise<string[]> {
  const grants = await source.rows<GrantRow>(
    `WITH rels AS (${RELATIONS}),
     acls AS (
       SELECT CASE WHEN relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind,
              pg_catalog.quote_ident(relname) AS name, NULL::text AS columns, relacl AS acl,
              relowner AS owner, oid AS sort
         FROM rels WHERE relacl IS NOT NULL AND relkind IN ('r', 'v', 'S')
       UNION ALL
       SELECT 'TABLE', pg_catalog.quote_ident(c.relname), pg_catalog.quote_ident(a.attname),
              a.attacl, c.relowner, c.oid
         FROM rels c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
        WHERE a.attacl IS NOT NULL AND NOT a.attisdropped
       UNION ALL
       SELECT CASE WHEN p.prokind = 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
              (pg_catalog.pg_identify_object('pg_catalog.pg_proc'::regclass, p.oid, 0)).identity,
              NULL, p.proacl, p.proowner, p.oid
         FROM pg_catalog.pg_proc p WHERE p.pronamespace = $1::int8::oid AND p.proacl IS NOT NULL
       UNION ALL
       SELECT 'SCHEMA', NULL, NULL, nspacl, nspowner, 0
         FROM pg_catalog.pg_namespace WHERE oid = $1::int8::oid AND nspacl IS NOT NULL)
     SELECT kind, name AS identity, columns,
            (SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
                      'grantee', CASE WHEN e.grantee = 0 THEN 'PUBLIC'
                                      ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(e.grantee)) END,
                      'privilege', e.privilege_type, 'grantable', e.is_grantable,
                      'foreign', e.grantor <> acls.owner))
               FROM pg_catalog.aclexplode(acl) e) AS grants
       FROM acls ORDER BY sort, columns NULLS FIRST`,
  );
  const out: string[] = [];
  for (const g of grants) {
    const object =
      g.kind === 'SCHEMA'
        ? TARGET
        : g.kind === 'FUNCTION' || g.kind === 'PROCEDURE'
          ? source.retarget(g.identity)
          : source.inTarget(unquote(g.identity));
    if (g.grants.some((e) => e.foreign)) {
      throw new UncloneableSchemaError(
        `a privilege on ${g.kind} ${g.identity ?? source.schema} granted by another role`,
      );
    }
    if (g.columns === null) {
      // Start from no privileges at all, then grant exactly what the source has.
      out.push(`REVOKE ALL ON ${g.kind} ${object} FROM PUBLIC, CURRENT_USER`);
    }
    for (const e of g.grants) {
      const what = g.columns === null ? e.privilege : `${e.privilege} (${g.columns})`;
      out.push(
        `GRANT ${what} ON ${g.kind} ${object} TO ${e.grantee}${e.grantable ? ' WITH GRANT OPTION' : ''}`,
      );
    }
  }
  return out;
}

/** The bare name of an identifier printed by `quote_ident`. */
function unquote(identifier: string): string {
  return identifier.startsWith('"') ? identifier.slice(1, -1).replace(/""/g, '"') : identifier;
}
