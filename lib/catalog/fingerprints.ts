// Fingerprints of a schema: sorted lines describing it, equal for two schemas that are alike.
// Two kinds, for two questions: is a copy exact (same database: privileges, owners and rows
// included), and did the same files build the same schema (any database: definitions only).
import type pg from 'pg';
import { withSearchPath } from '../connection/sessions.js';
import { qualifiedName, quoteIdentifier } from '../shared/identifiers.js';
import { COMMENTS, RELATIONS, idParams, schemaIds } from './catalog-sql.js';
import { replaceSchemaReferences } from './schema-references.js';

/**
 * The exact fingerprint of `schema`, for proving a copy equal to its source in the same
 * database: a sorted, schema-name-free description of relations, columns with types, defaults,
 * identity, storage and statistics targets, constraints, indexes, views, functions, triggers,
 * sequences with their owners and positions (`last_value` and `is_called`), owners and
 * privileges, comments, every object it contains, and a checksum of every table's rows. Two
 * schemas with equal exact fingerprints are the same to their users. The schema's name appears
 * as `<schema>`. The migration history table is left out, and so is the column option
 * `pg_attver`, a per-creation stamp some server builds keep, which differs between any two
 * creations of the same column.
 */
export async function exactFingerprint(client: pg.ClientBase, schema: string): Promise<string[]> {
  return withSearchPath(client, 'pg_catalog', async () => {
    const ids = await schemaIds(client, schema);
    const { rows } = await client.query<{ line: string }>(
      `WITH rels AS (${RELATIONS})
       SELECT 'schema acl=' || coalesce(nspacl::text, '-') AS line
         FROM pg_catalog.pg_namespace WHERE oid = $1::int8::oid
       UNION ALL SELECT 'object ' || o.type || ' ' || o.identity FROM pg_catalog.pg_depend d
         CROSS JOIN LATERAL pg_catalog.pg_identify_object(d.classid, d.objid, d.objsubid) o
        WHERE d.refclassid = 'pg_catalog.pg_namespace'::regclass AND d.refobjid = $1::int8::oid
          AND d.objid <> $2::int8::oid
       UNION ALL SELECT 'relation ' || relname || ' kind=' || relkind::text || ' persistence=' || relpersistence::text
              || ' options=' || coalesce(reloptions::text, '-') || ' rls=' || relrowsecurity::text || relforcerowsecurity::text
              || ' replident=' || relreplident::text || ' acl=' || coalesce(relacl::text, '-')
              || ' owner=' || pg_catalog.pg_get_userbyid(relowner)
         FROM rels
       UNION ALL SELECT 'column ' || c.relname || '.' || a.attname
              || ' #' || row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum)
              || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod) || ' notnull=' || a.attnotnull
              || ' default=' || coalesce(pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), '-')
              || ' identity=' || a.attidentity::text || ' generated=' || a.attgenerated::text
              || ' collation=' || a.attcollation::regcollation::text || ' storage=' || a.attstorage::text
              || ' compression=' || a.attcompression::text || ' options=' || coalesce((SELECT pg_catalog.array_agg(o) FROM pg_catalog.unnest(a.attoptions) o
                                      WHERE o NOT LIKE 'pg\\_attver=%')::text, '-')
              || ' statistics=' || coalesce(CASE WHEN a.attstattarget >= 0 THEN a.attstattarget::text END, '-')
              || ' acl=' || coalesce(a.attacl::text, '-')
         FROM rels c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
         LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
        WHERE a.attnum > 0 AND NOT a.attisdropped
       UNION ALL SELECT 'constraint ' || coalesce(r.relname, '-') || ' ' || c.conname || ' ' || c.contype::text
              || ' ' || pg_catalog.pg_get_constraintdef(c.oid) || ' valid=' || c.convalidated
         FROM pg_catalog.pg_constraint c LEFT JOIN pg_catalog.pg_class r ON r.oid = c.conrelid
        WHERE c.connamespace = $1::int8::oid AND c.conrelid <> $2::int8::oid
       UNION ALL SELECT 'index ' || pg_catalog.pg_get_indexdef(i.indexrelid)
              || ' clustered=' || i.indisclustered || ' replident=' || i.indisreplident
         FROM pg_catalog.pg_index i JOIN rels t ON t.oid = i.indrelid
       UNION ALL SELECT 'view ' || relname || ' ' || pg_catalog.pg_get_viewdef(oid)
         FROM rels WHERE relkind IN ('v', 'm')
       UNION ALL SELECT 'function ' || pg_catalog.pg_get_functiondef(p.oid)
              || ' acl=' || coalesce(p.proacl::text, '-') || ' owner=' || pg_catalog.pg_get_userbyid(p.proowner)
         FROM pg_catalog.pg_proc p WHERE p.pronamespace = $1::int8::oid AND p.prokind IN ('f', 'p')
       UNION ALL SELECT 'trigger ' || pg_catalog.pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text
         FROM pg_catalog.pg_trigger t JOIN rels c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal
       UNION ALL SELECT 'sequence ' || c.relname || ' ' || pg_catalog.format_type(s.seqtypid, NULL)
              || ' start=' || s.seqstart || ' increment=' || s.seqincrement || ' min=' || s.seqmin
              || ' max=' || s.seqmax || ' cache=' || s.seqcache || ' cycle=' || s.seqcycle
              || ' owned=' || coalesce((SELECT d.deptype::text || ':' || t.relname || '.' || a.attname
                   FROM pg_catalog.pg_depend d
                   JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
                   JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                  WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
                    AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i')), '-')
         FROM rels c JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid
       UNION ALL SELECT 'policy ' || p.polname || ' on ' || c.relname FROM pg_catalog.pg_policy p
         JOIN rels c ON c.oid = p.polrelid
       UNION ALL SELECT 'rule ' || pg_catalog.pg_get_ruledef(r.oid) FROM pg_catalog.pg_rewrite r
         JOIN rels c ON c.oid = r.ev_class WHERE r.rulename <> '_RETURN'
       UNION ALL SELECT 'comment ' || type || ' ' || identity || ' ' || text FROM (${COMMENTS}) c`,
      idParams(ids),
    );
    const lines = rows.map((r) => r.line);
    const tables = await client.query<{ name: string }>(
      `WITH rels AS (${RELATIONS}) SELECT relname AS name FROM rels WHERE relkind = 'r'`,
      idParams(ids),
    );
    // The position is read from the sequence itself: `pg_sequence_last_value` is NULL both for
    // a sequence never used and for one restarted (`RESTART WITH 1041`, `setval(…, false)`).
    const sequences = await client.query<{ name: string }>(
      `WITH rels AS (${RELATIONS}) SELECT relname AS name FROM rels WHERE relkind = 'S'`,
      idParams(ids),
    );
    for (const { name } of sequences.rows) {
      const { rows: at } = await client.query<{ last_value: string; is_called: boolean }>(
        `SELECT last_value::text, is_called FROM ${qualifiedName(schema, name)}`,
      );
      lines.push(`sequence ${name} at last=${at[0].last_value} called=${at[0].is_called}`);
    }
    for (const { name } of tables.rows) {
      const { rows: data } = await client.query<{ line: string }>(
        `SELECT 'rows ' || $1 || ' ' || count(*) || ' '
                || pg_catalog.md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) AS line
           FROM ${qualifiedName(schema, name)} x`,
        [name],
      );
      lines.push(data[0].line);
    }
    return anonymise(lines, schema).sort();
  });
}

/**
 * The definition fingerprint of `schema`, comparable across databases: everything the schema
 * defines — relations, columns with types, defaults, identity and generation, constraints,
 * indexes, triggers, functions, views, sequences, types, comments — with the schema's own name
 * replaced by `{{schema}}` (as a qualifier and in search_path values, `SET search_path` included),
 * sorted: two schemas built alike give equal lists wherever they live.
 * Owners, privileges, rows and sequence positions are left out (roles and data differ between
 * databases). Stored in tenant exports, so its lines never change within a format version.
 */
export async function definitionFingerprint(
  client: pg.ClientBase,
  schema: string,
): Promise<string[]> {
  const { rows } = await client.query<{ line: string }>(
    `WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = $1)
     SELECT 'relation ' || c.relname || ' ' || c.relkind::text || ' ' || coalesce(c.reloptions::text, '') AS line
       FROM pg_class c, ns WHERE c.relnamespace = ns.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
     UNION ALL
     SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
            || ' notnull=' || a.attnotnull || ' identity=' || a.attidentity::text || ' generated=' || a.attgenerated::text
            || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
            || ' collation=' || coalesce((SELECT collname FROM pg_collation WHERE oid = a.attcollation), '')
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum, ns
      WHERE c.relnamespace = ns.oid AND a.attnum > 0 AND NOT a.attisdropped
        AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
     UNION ALL
     SELECT 'constraint ' || coalesce(c.relname, '') || '.' || k.conname || ' ' || pg_get_constraintdef(k.oid)
       FROM pg_constraint k LEFT JOIN pg_class c ON c.oid = k.conrelid, ns WHERE k.connamespace = ns.oid
     UNION ALL
     SELECT 'index ' || pg_get_indexdef(i.indexrelid)
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid, ns WHERE c.relnamespace = ns.oid
     UNION ALL
     SELECT 'trigger ' || pg_get_triggerdef(t.oid) || ' enabled=' || t.tgenabled::text
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid, ns
      WHERE c.relnamespace = ns.oid AND NOT t.tgisinternal
     UNION ALL
     SELECT 'function ' || pg_get_functiondef(p.oid)
       FROM pg_proc p, ns WHERE p.pronamespace = ns.oid AND p.prokind IN ('f', 'p')
     UNION ALL
     SELECT 'view ' || c.relname || ' ' || pg_get_viewdef(c.oid)
       FROM pg_class c, ns WHERE c.relnamespace = ns.oid AND c.relkind IN ('v', 'm')
     UNION ALL
     SELECT 'sequence ' || c.relname || ' ' || format_type(s.seqtypid, NULL) || ' ' || s.seqincrement
            || ' ' || s.seqmin || ' ' || s.seqmax || ' ' || s.seqstart || ' ' || s.seqcycle
            || ' owned=' || coalesce((SELECT t.relname || '.' || a.attname FROM pg_depend dp
                 JOIN pg_class t ON t.oid = dp.refobjid
                 JOIN pg_attribute a ON a.attrelid = dp.refobjid AND a.attnum = dp.refobjsubid
                WHERE dp.classid = 'pg_class'::regclass AND dp.objid = c.oid AND dp.deptype IN ('a', 'i')
                LIMIT 1), '')
       FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid, ns WHERE c.relnamespace = ns.oid
     UNION ALL
     SELECT 'type ' || t.typname || ' ' || t.typtype::text || ' '
            || coalesce((SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid), '')
       FROM pg_type t, ns WHERE t.typnamespace = ns.oid AND t.typtype IN ('e', 'd')
     UNION ALL
     SELECT 'comment ' || c.relname || ' ' || d.objsubid || ' ' || d.description
       FROM pg_description d JOIN pg_class c ON c.oid = d.objoid AND d.classoid = 'pg_class'::regclass, ns
      WHERE c.relnamespace = ns.oid`,
    [schema],
  );
  return rows.map((r) => withSchemaPlaceholder(r.line, schema)).sort();
}

/**
 * A definition fingerprint's line with `schema` written `{{schema}}` wherever it stands for the
 * schema: a qualifier, or an element of a function's `SET search_path` (which
 * `pg_get_functiondef` prints as a literal). Also applied to the lines of an export made before
 * search paths were normalised, so those still import.
 */
export function withSchemaPlaceholder(line: string, schema: string): string {
  return replaceSchemaReferences(line, schema, '{{schema}}');
}

/** The first line one fingerprint has and the other lacks, or `undefined` when they are equal. */
export function firstDifference(
  expected: readonly string[],
  actual: readonly string[],
): { readonly missing: string } | { readonly extra: string } | undefined {
  const a = new Set(actual);
  const missing = expected.find((line) => !a.has(line));
  if (missing !== undefined) return { missing };
  const e = new Set(expected);
  const extra = actual.find((line) => !e.has(line));
  return extra === undefined ? undefined : { extra };
}

/** The first difference between two fingerprints, as text, or `undefined` when they are equal. */
export function fingerprintDifference(
  expected: readonly string[],
  actual: readonly string[],
): string | undefined {
  const difference = firstDifference(expected, actual);
  if (difference === undefined) return undefined;
  return 'missing' in difference
    ? `missing: ${difference.missing.slice(0, 200)}`
    : `unexpected: ${difference.extra.slice(0, 200)}`;
}

/** Replaces `schema`, quoted or as a name of its own, with `<schema>`. */
function anonymise(lines: string[], schema: string): string[] {
  const quoted = quoteIdentifier(schema);
  const bare = new RegExp(
    `(?<![A-Za-z0-9_$"])${schema.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![A-Za-z0-9_$"])`,
    'g',
  );
  return lines.map((line) => line.replaceAll(quoted, '<schema>').replace(bare, '<schema>'));
}
