// What the pooled adaptation reads from the catalog: the schema's relations, the tenant column
// of each table, policies, keys, unique indexes, foreign keys and functions. Column numbers are
// turned into names here, so the planning code never sees an attnum.
import type pg from 'pg';
import { idParams, RELATIONS, schemaIds } from './catalog-sql.js';
import { SHIM_PREFIX } from './pooled-shims.js';

/** A relation of the pooled schema. */
export interface PooledRelation {
  readonly oid: number;
  readonly name: string;
  /** `r` table, `p` partitioned table, `v` view, `m` materialized view, `f` foreign table. */
  readonly kind: string;
  readonly rowSecurity: boolean;
  readonly forceRowSecurity: boolean;
  /** A view with `security_invoker` on (in any spelling PostgreSQL accepts). */
  readonly invoker: boolean;
}

/** The tenant column as the catalog has it, or its absence. */
export interface TenantColumnState {
  readonly type: string;
  readonly notNull: boolean;
  readonly defaultExpr: string | null;
  /** An identity or generated column. */
  readonly special: boolean;
}

/** A row-level security policy on a table of the schema. */
export interface PooledPolicy {
  readonly table: string;
  readonly name: string;
  readonly permissive: boolean;
  readonly command: string;
  readonly roles: readonly number[];
  readonly using: string | null;
  readonly check: string | null;
}

/** A primary key, unique, exclusion or foreign key constraint of a table of the schema. */
export interface PooledConstraint {
  readonly name: string;
  readonly type: 'p' | 'u' | 'x' | 'f';
  readonly table: string;
  readonly columns: readonly string[];
  readonly deferrable: boolean;
  readonly deferred: boolean;
  readonly validated: boolean;
  /** Key constraints: INCLUDE columns, NULLS NOT DISTINCT, index storage options. */
  readonly include: readonly string[];
  readonly nullsNotDistinct: boolean;
  readonly indexOptions: readonly string[];
  /** Foreign keys: the referenced table (`null` when outside the schema) and columns. */
  readonly refTable: string | null;
  readonly refColumns: readonly string[];
  readonly onUpdate: string;
  readonly onDelete: string;
  readonly match: string;
  /** `ON DELETE SET NULL (cols)` / `SET DEFAULT (cols)` (PostgreSQL 15+), else empty. */
  readonly deleteSetColumns: readonly string[];
}

/** One key column of a unique index: a column name or PostgreSQL's own deparse of an expression. */
export interface IndexElement {
  readonly column: string | null;
  readonly expression: string | null;
  /** `COLLATE`/opclass/ordering text to repeat, built from catalog names. */
  readonly suffix: string;
  /** An expression with a collation other than its default: not rebuilt. */
  readonly unsupported: boolean;
}

/** A unique index that is no constraint (`CREATE UNIQUE INDEX`). */
export interface PooledUniqueIndex {
  readonly name: string;
  readonly table: string;
  readonly method: string;
  readonly elements: readonly IndexElement[];
  readonly include: readonly string[];
  readonly predicate: string | null;
  readonly nullsNotDistinct: boolean;
  readonly options: readonly string[];
}

/** Everything one adaptation run decides from. */
export interface PooledCatalog {
  readonly serverVersion: number;
  /** `quote_ident(column)`: how PostgreSQL deparses the column in a policy expression. */
  readonly deparsedColumn: string;
  readonly relations: readonly PooledRelation[];
  readonly tenantColumns: ReadonlyMap<string, TenantColumnState>;
  readonly policies: readonly PooledPolicy[];
  readonly constraints: readonly PooledConstraint[];
  /** Foreign keys of tables outside the schema that reference a table of it: `table.name`. */
  readonly inboundKeys: readonly string[];
  readonly uniqueIndexes: readonly PooledUniqueIndex[];
  readonly securityDefiners: readonly string[];
  readonly sequences: readonly string[];
}

const WITH_RELS = `WITH rels AS (${RELATIONS})`;
/** `confdelsetcols` as a JSON array (PostgreSQL 15+; JSON null on a key without it, '[]' before 15). */
const DELETE_SET_COLUMNS = `CASE WHEN pg_catalog.jsonb_typeof(to_jsonb(k) -> 'confdelsetcols') = 'array'
  THEN to_jsonb(k) -> 'confdelsetcols' ELSE '[]' END`;
/** `$3` names of a relation's columns by attnum. */
const NAMES = (rel: string, nums: string) =>
  `coalesce(array(SELECT a.attname::text FROM unnest(${nums}) WITH ORDINALITY u(n, o)
     JOIN pg_catalog.pg_attribute a ON a.attrelid = ${rel} AND a.attnum = u.n ORDER BY u.o), '{}')`;

/** Reads the pooled schema's catalog; the migration history table is left out. */
export async function readPooledCatalog(
  client: pg.ClientBase,
  schema: string,
  column: string,
): Promise<PooledCatalog> {
  const ids = await schemaIds(client, schema);
  const params = idParams(ids);
  const { rows: head } = await client.query<{ version: string; deparsed: string }>(
    `SELECT current_setting('server_version_num') AS version, pg_catalog.quote_ident($1) AS deparsed`,
    [column],
  );
  const relations = (
    await client.query<PooledRelation>(
      `${WITH_RELS} SELECT oid::int8::float8 AS oid, relname AS name, relkind AS kind,
              relrowsecurity AS "rowSecurity", relforcerowsecurity AS "forceRowSecurity",
              coalesce((SELECT bool_or(o.option_value::bool) FROM pg_catalog.pg_options_to_table(reloptions) o
                         WHERE o.option_name = 'security_invoker'), false) AS invoker
         FROM rels WHERE relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY relname`,
      params,
    )
  ).rows;
  const { rows: columns } = await client.query<TenantColumnState & { table: string }>(
    `${WITH_RELS} SELECT c.relname AS table, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
            a.attnotnull AS "notNull", pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS "defaultExpr",
            (a.attidentity <> '' OR a.attgenerated <> '') AS special
       FROM rels c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
       LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE c.relkind = 'r' AND a.attname = $3 AND NOT a.attisdropped`,
    [...params, column],
  );
  const policies = (
    await client.query<PooledPolicy>(
      `${WITH_RELS} SELECT c.relname AS table, p.polname AS name, p.polpermissive AS permissive,
              p.polcmd AS command, p.polroles::int8[]::float8[] AS roles,
              pg_catalog.pg_get_expr(p.polqual, p.polrelid) AS using,
              pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) AS check
         FROM pg_catalog.pg_policy p JOIN rels c ON c.oid = p.polrelid ORDER BY 1, 2`,
      params,
    )
  ).rows;
  const constraints = (
    await client.query<PooledConstraint>(
      `${WITH_RELS} SELECT k.conname AS name, k.contype AS type, c.relname AS table,
              ${NAMES('k.conrelid', 'k.conkey')} AS columns,
              k.condeferrable AS deferrable, k.condeferred AS deferred, k.convalidated AS validated,
              CASE WHEN k.contype IN ('p', 'u')
                   THEN ${NAMES('k.conrelid', 'x.indkey[x.indnkeyatts:]::int2[]')} ELSE '{}' END AS include,
              coalesce((to_jsonb(x) ->> 'indnullsnotdistinct')::bool, false) AS "nullsNotDistinct",
              coalesce(ic.reloptions, '{}') AS "indexOptions",
              CASE WHEN r.relnamespace = c.relnamespace THEN r.relname END AS "refTable",
              ${NAMES('k.confrelid', 'k.confkey')} AS "refColumns",
              k.confupdtype AS "onUpdate", k.confdeltype AS "onDelete", k.confmatchtype AS match,
              ${NAMES('k.conrelid', 'array(SELECT e::int2 FROM pg_catalog.jsonb_array_elements_text(' + DELETE_SET_COLUMNS + ') e)')} AS "deleteSetColumns"
         FROM pg_catalog.pg_constraint k JOIN rels c ON c.oid = k.conrelid
         LEFT JOIN pg_catalog.pg_class r ON r.oid = k.confrelid
         LEFT JOIN pg_catalog.pg_index x ON x.indexrelid = k.conindid AND k.contype IN ('p', 'u')
         LEFT JOIN pg_catalog.pg_class ic ON ic.oid = x.indexrelid
        WHERE k.contype IN ('p', 'u', 'x', 'f') ORDER BY c.relname, k.conname`,
      params,
    )
  ).rows;
  const { rows: inbound } = await client.query<{ name: string }>(
    `${WITH_RELS} SELECT pg_catalog.format('%s.%s', k.conrelid::regclass, pg_catalog.quote_ident(k.conname)) AS name
       FROM pg_catalog.pg_constraint k
      WHERE k.contype = 'f' AND k.confrelid IN (SELECT oid FROM rels)
        AND k.conrelid NOT IN (SELECT oid FROM rels) ORDER BY 1`,
    params,
  );
  const uniqueIndexes = await readUniqueIndexes(client, params);
  const { rows: definers } = await client.query<{ name: string }>(
    `SELECT pg_catalog.format('%I(%s)', p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid)) AS name
       FROM pg_catalog.pg_proc p
      WHERE p.pronamespace = $1::int8::oid AND p.prosecdef ORDER BY 1`,
    [ids.nsp],
  );
  const { rows: sequences } = await client.query<{ name: string }>(
    `${WITH_RELS} SELECT relname AS name FROM rels WHERE relkind = 'S' ORDER BY 1`,
    params,
  );
  return {
    serverVersion: Number(head[0].version),
    deparsedColumn: head[0].deparsed,
    relations,
    tenantColumns: new Map(columns.map(({ table, ...state }) => [table, state])),
    policies,
    constraints,
    inboundKeys: inbound.map((r) => r.name),
    uniqueIndexes,
    securityDefiners: definers.map((r) => r.name),
    sequences: sequences.map((r) => r.name),
  };
}

async function readUniqueIndexes(
  client: pg.ClientBase,
  params: number[],
): Promise<PooledUniqueIndex[]> {
  const { rows } = await client.query<{
    name: string;
    table: string;
    method: string;
    keys: (string | null)[];
    pieces: string[];
    options_bits: number[];
    collations: (string | null)[];
    default_collation: boolean[];
    opclasses: (string | null)[];
    include: string[];
    predicate: string | null;
    nulls_not_distinct: boolean;
    options: string[];
  }>(
    `${WITH_RELS} SELECT ic.relname AS name, c.relname AS table, am.amname AS method,
            array(SELECT a.attname::text FROM unnest(x.indkey[:x.indnkeyatts - 1]::int2[]) WITH ORDINALITY u(n, o)
                    LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = u.n AND u.n > 0
                   ORDER BY u.o) AS keys,
            array(SELECT pg_catalog.pg_get_indexdef(x.indexrelid, k, true)
                    FROM generate_series(1, x.indnkeyatts) k ORDER BY k) AS pieces,
            x.indoption::int2[]::int4[] AS options_bits,
            array(SELECT CASE WHEN u.coll = 0 OR u.coll = coalesce(a.attcollation, 0) THEN NULL
                              ELSE pg_catalog.format('%I.%I', cn.nspname, co.collname) END
                    FROM unnest(x.indcollation::oid[], x.indkey[:x.indnkeyatts - 1]::int2[]) WITH ORDINALITY u(coll, n, o)
                    LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = u.n AND u.n > 0
                    LEFT JOIN pg_catalog.pg_collation co ON co.oid = u.coll
                    LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace ORDER BY u.o) AS collations,
            array(SELECT u.coll IN (0, 100) FROM unnest(x.indcollation::oid[]) WITH ORDINALITY u(coll, o)
                   ORDER BY u.o) AS default_collation,
            array(SELECT CASE WHEN oc.opcdefault THEN NULL
                              ELSE pg_catalog.format('%I.%I', on_.nspname, oc.opcname) END
                    FROM unnest(x.indclass::oid[]) WITH ORDINALITY u(cls, o)
                    JOIN pg_catalog.pg_opclass oc ON oc.oid = u.cls
                    JOIN pg_catalog.pg_namespace on_ ON on_.oid = oc.opcnamespace ORDER BY u.o) AS opclasses,
            ${NAMES('x.indrelid', 'x.indkey[x.indnkeyatts:]::int2[]')} AS include,
            pg_catalog.pg_get_expr(x.indpred, x.indrelid) AS predicate,
            coalesce((to_jsonb(x) ->> 'indnullsnotdistinct')::bool, false) AS nulls_not_distinct,
            coalesce(ic.reloptions, '{}') AS options
       FROM pg_catalog.pg_index x JOIN rels c ON c.oid = x.indrelid
       JOIN pg_catalog.pg_class ic ON ic.oid = x.indexrelid
       JOIN pg_catalog.pg_am am ON am.oid = ic.relam
      WHERE x.indisunique AND c.relkind = 'r' AND NOT starts_with(ic.relname, '${SHIM_PREFIX}')
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
                         WHERE k.conindid = x.indexrelid AND k.conrelid = x.indrelid
                           AND k.contype IN ('p', 'u', 'x'))
      ORDER BY c.relname, ic.relname`,
    params,
  );
  return rows.map((r) => ({
    name: r.name,
    table: r.table,
    method: r.method,
    elements: r.keys.map((name, k) => {
      const bits = r.options_bits[k] ?? 0;
      const suffix = [
        r.collations[k] === null ? '' : ` COLLATE ${r.collations[k]}`,
        r.opclasses[k] === null ? '' : ` ${r.opclasses[k]}`,
        bits & 1 ? ' DESC' : '',
        // DESC defaults to NULLS FIRST, ASC to NULLS LAST: say it only when it differs.
        bits & 1 ? (bits & 2 ? '' : ' NULLS LAST') : bits & 2 ? ' NULLS FIRST' : '',
      ].join('');
      return name === null
        ? {
            column: null,
            expression: r.pieces[k],
            suffix,
            unsupported: !r.default_collation[k],
          }
        : { column: name, expression: null, suffix, unsupported: false };
    }),
    include: r.include,
    predicate: r.predicate,
    nullsNotDistinct: r.nulls_not_distinct,
    options: r.options,
  }));
}

/** What the managed role lacks of the pooled tier's grants. */
export interface MissingGrants {
  readonly schema: boolean;
  /** Tables and views without all of SELECT, INSERT, UPDATE, DELETE. */
  readonly tables: readonly string[];
  /** Sequences without USAGE and SELECT. */
  readonly sequences: readonly string[];
  /** A function or procedure of the schema it cannot execute. */
  readonly routines: boolean;
}

/** What `role` lacks on the pooled schema (the migration history table left out). */
export async function missingGrants(
  client: pg.ClientBase,
  schema: string,
  role: string,
): Promise<MissingGrants> {
  const params = idParams(await schemaIds(client, schema));
  const all = (check: string, privileges: string[]) =>
    privileges.map((p) => `pg_catalog.${check}($3, oid, '${p}')`).join(' AND ');
  const { rows } = await client.query<MissingGrants>(
    `${WITH_RELS} SELECT NOT pg_catalog.has_schema_privilege($3, $1::int8::oid, 'USAGE') AS schema,
            array(SELECT relname::text FROM rels WHERE relkind IN ('r', 'v')
                     AND NOT (${all('has_table_privilege', ['SELECT', 'INSERT', 'UPDATE', 'DELETE'])})
                   ORDER BY 1) AS tables,
            array(SELECT relname::text FROM rels WHERE relkind = 'S'
                     AND NOT (${all('has_sequence_privilege', ['USAGE', 'SELECT'])}) ORDER BY 1) AS sequences,
            EXISTS (SELECT 1 FROM pg_catalog.pg_proc WHERE pronamespace = $1::int8::oid
                       AND NOT pg_catalog.has_function_privilege($3, oid, 'EXECUTE')) AS routines`,
    [...params, role],
  );
  return rows[0];
}
