import type pg from 'pg';
import { quoteIdentifier } from '../shared/identifiers.js';
import { historyTable } from '../migrations/migration-history.js';

/**
 * Reading a schema's catalog: the DDL script that re-creates it under another name (used to
 * clone tenants from the template schema) and a normalised fingerprint of it (used to check
 * that a clone equals its source).
 *
 * Every deparsing function runs with `search_path` set to `pg_catalog` only, so PostgreSQL
 * qualifies every name it prints. The source schema's name is chosen so that it always needs
 * quoting (it contains `$`): it then appears in deparsed text, and in function bodies expanded
 * from `{{schema}}`/`{{tables.x}}`, in one form only, `"name"`, which the script replaces.
 */

/** Stands for the target schema in a script until {@link scriptFor} fills it in. */
const TARGET = '\u0001';

/** A schema object the clone script does not reproduce: tenants are created by replay instead. */
export class UncloneableSchemaError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'UncloneableSchemaError';
  }
}

/** `script` with its placeholder replaced by the quoted `target` schema. */
export function scriptFor(script: string, target: string): string {
  return script.replaceAll(TARGET, quoteIdentifier(target));
}

/** Runs `fn` with `search_path = pg_catalog`, restoring the previous path after. */
async function qualified<T>(client: pg.ClientBase, fn: () => Promise<T>): Promise<T> {
  const { rows } = await client.query<{ path: string }>(
    `SELECT current_setting('search_path') AS path, set_config('search_path', 'pg_catalog', false)`,
  );
  try {
    return await fn();
  } finally {
    await client
      .query(`SELECT set_config('search_path', $1, false)`, [rows[0].path])
      .catch(() => undefined);
  }
}

/**
 * The schema's oid and its history table's (0 without one): the history table, its index and
 * its constraints belong to the migration runner and are never part of a clone or fingerprint.
 */
async function schemaIds(
  client: pg.ClientBase,
  schema: string,
): Promise<{ nsp: number; history: number }> {
  const { rows } = await client.query<{ nsp: number | null; history: number | null }>(
    `SELECT (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1)::int8 AS nsp,
            coalesce(pg_catalog.to_regclass($2)::oid, 0)::int8 AS history`,
    [schema, historyTable(schema)],
  );
  if (rows[0].nsp === null) throw new UncloneableSchemaError(`schema "${schema}" does not exist`);
  return { nsp: Number(rows[0].nsp), history: Number(rows[0].history) };
}

/** Relations of the schema, the history table and its index left out. $1 schema oid, $2 history oid. */
const RELATIONS = `SELECT c.* FROM pg_catalog.pg_class c
  WHERE c.relnamespace = $1::int8::oid AND c.oid <> $2::int8::oid
    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indexrelid = c.oid AND i.indrelid = $2::int8::oid)`;

/** Comments on the schema and its objects, with the object's kind and qualified identity. */
const COMMENTS = `SELECT o.type, o.identity, pg_catalog.quote_literal(d.description) AS text
  FROM pg_catalog.pg_description d
  CROSS JOIN LATERAL pg_catalog.pg_identify_object(d.classoid, d.objoid, d.objsubid) o
 WHERE (d.classoid = 'pg_catalog.pg_class'::regclass AND d.objoid IN (SELECT oid FROM rels))
    OR (d.classoid = 'pg_catalog.pg_proc'::regclass
        AND d.objoid IN (SELECT oid FROM pg_catalog.pg_proc WHERE pronamespace = $1::int8::oid))
    OR (d.classoid = 'pg_catalog.pg_constraint'::regclass
        AND d.objoid IN (SELECT oid FROM pg_catalog.pg_constraint
                          WHERE connamespace = $1::int8::oid AND conrelid <> $2::int8::oid))
    OR (d.classoid = 'pg_catalog.pg_trigger'::regclass
        AND d.objoid IN (SELECT oid FROM pg_catalog.pg_trigger WHERE tgrelid IN (SELECT oid FROM rels)))
    OR (d.classoid = 'pg_catalog.pg_namespace'::regclass AND d.objoid = $1::int8::oid)`;

/** Objects whose kind the script reproduces; anything else in the schema makes it uncloneable. */
const CLONED_KINDS = new Set(['table', 'sequence', 'view', 'function', 'procedure', 'index']);

const COMMENT_KEYWORDS: Record<string, string> = {
  schema: 'SCHEMA',
  table: 'TABLE',
  'table column': 'COLUMN',
  'view column': 'COLUMN',
  index: 'INDEX',
  sequence: 'SEQUENCE',
  view: 'VIEW',
  function: 'FUNCTION',
  procedure: 'PROCEDURE',
  trigger: 'TRIGGER',
  'table constraint': 'CONSTRAINT',
};

/** Why the schema holds something the script would not reproduce, or `undefined`. */
async function uncloneable(
  client: pg.ClientBase,
  schema: string,
  ids: { nsp: number; history: number },
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
    [ids.nsp, ids.history, [...CLONED_KINDS], Object.keys(COMMENT_KEYWORDS)],
  );
  if (rows[0]) return rows[0].reason;
  // Seed rows naming the schema itself would name the template in every clone.
  const tables = await client.query<{ name: string }>(
    `WITH rels AS (${RELATIONS}) SELECT relname AS name FROM rels WHERE relkind = 'r' ORDER BY oid`,
    [ids.nsp, ids.history],
  );
  for (const { name } of tables.rows) {
    const found = await client.query(
      `SELECT 1 FROM ${quoteIdentifier(schema)}.${quoteIdentifier(name)} x WHERE x::text LIKE $1 LIMIT 1`,
      [`%${schema.replace(/[\\%_]/g, '\\$&')}%`],
    );
    if (found.rowCount) return `a row of table ${name} contains the schema name`;
  }
  return undefined;
}

interface ColumnInfo {
  name: string;
  type: string;
  collation: string | null;
  default: string | null;
  generated: string;
  identity: string;
  notnull: boolean;
  notnullName: string | null;
  notnullNoInherit: boolean;
}

interface SequenceInfo {
  name: string;
  type: string;
  start: string;
  increment: string;
  min: string;
  max: string;
  cache: string;
  cycle: boolean;
  owner_table: string | null;
  owner_column: string | null;
  deptype: string | null;
}

const q = quoteIdentifier;

/**
 * The DDL and data statements that re-create `schema`'s objects (all but its migration history)
 * in another, empty schema: one text to send as one query, its target left as a placeholder
 * for {@link scriptFor}. Rows are copied from `schema` when the script runs; sequence positions
 * are those of now.
 *
 * @throws UncloneableSchemaError naming the first object the script would not reproduce.
 */
export async function cloneScript(client: pg.ClientBase, schema: string): Promise<string> {
  return qualified(client, async () => {
    const ids = await schemaIds(client, schema);
    const reason = await uncloneable(client, schema, ids);
    if (reason !== undefined) throw new UncloneableSchemaError(reason);
    const source = q(schema);
    const args = [ids.nsp, ids.history];
    /** Deparsed text with the source schema replaced by the target placeholder. */
    const retarget = (text: string) => text.replaceAll(source, TARGET);
    const name = (relname: string) => `${TARGET}.${q(relname)}`;
    const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;
    const out: string[] = ['SET LOCAL check_function_bodies = off'];

    const sequences = (
      await client.query<SequenceInfo>(
        `WITH rels AS (${RELATIONS})
         SELECT c.relname AS name, pg_catalog.format_type(s.seqtypid, NULL) AS type,
                s.seqstart::text AS start, s.seqincrement::text AS increment, s.seqmin::text AS min,
                s.seqmax::text AS max, s.seqcache::text AS cache, s.seqcycle AS cycle,
                t.relname AS owner_table, a.attname AS owner_column, d.deptype::text AS deptype
           FROM rels c JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid
           LEFT JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
                 AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i')
           LEFT JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
           LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
          ORDER BY c.oid`,
        args,
      )
    ).rows;
    const options = (s: SequenceInfo) =>
      `INCREMENT BY ${s.increment} MINVALUE ${s.min} MAXVALUE ${s.max} START WITH ${s.start} CACHE ${s.cache} ${s.cycle ? 'CYCLE' : 'NO CYCLE'}`;
    const identityOf = new Map<string, SequenceInfo>();
    for (const s of sequences) {
      if (s.deptype === 'i') {
        identityOf.set(`${s.owner_table}.${s.owner_column}`, s);
        continue;
      }
      out.push(`CREATE SEQUENCE ${name(s.name)} AS ${s.type} ${options(s)}`);
    }

    const functions = (
      await client.query<{ def: string; atomic: boolean }>(
        `SELECT pg_catalog.pg_get_functiondef(p.oid) AS def, p.prosqlbody IS NOT NULL AS atomic
           FROM pg_catalog.pg_proc p WHERE p.pronamespace = $1::int8::oid ORDER BY p.oid`,
        [ids.nsp],
      )
    ).rows;
    // Bodies in quotes are not checked (check_function_bodies is off): they may name tables
    // created below. SQL-standard bodies are parsed at once, so they come after the tables.
    for (const f of functions.filter((fn) => !fn.atomic)) out.push(retarget(f.def));

    const tables = (
      await client.query<{
        oid: number;
        name: string;
        persistence: string;
        options: string[] | null;
        replident: string;
        columns: ColumnInfo[];
        has_rows: boolean;
      }>(
        `WITH rels AS (${RELATIONS})
         SELECT c.oid::int8 AS oid, c.relname AS name, c.relpersistence AS persistence,
                c.reloptions AS options, c.relreplident AS replident,
                (SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
                          'name', a.attname,
                          'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
                          'collation', CASE WHEN a.attcollation <> t.typcollation
                                            THEN a.attcollation::regcollation::text END,
                          'default', pg_catalog.pg_get_expr(ad.adbin, ad.adrelid),
                          'generated', a.attgenerated, 'identity', a.attidentity,
                          'notnull', a.attnotnull, 'notnullName', nn.conname,
                          'notnullNoInherit', coalesce(nn.connoinherit, false))
                          ORDER BY a.attnum)
                   FROM pg_catalog.pg_attribute a
                   JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
                   LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                   LEFT JOIN pg_catalog.pg_constraint nn ON nn.conrelid = a.attrelid AND nn.contype = 'n'
                         AND nn.conkey[1] = a.attnum
                  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
                false AS has_rows
           FROM rels c WHERE c.relkind = 'r' ORDER BY c.oid`,
        args,
      )
    ).rows;
    for (const t of tables) {
      const columns = (t.columns ?? []).map((c) => {
        let def = `${q(c.name)} ${retarget(c.type)}`;
        if (c.collation) def += ` COLLATE ${c.collation}`;
        if (c.generated === 's' || c.generated === 'v') {
          def += ` GENERATED ALWAYS AS (${retarget(c.default ?? '')}) ${c.generated === 's' ? 'STORED' : 'VIRTUAL'}`;
        } else if (c.identity === 'a' || c.identity === 'd') {
          const s = identityOf.get(`${t.name}.${c.name}`);
          def += ` GENERATED ${c.identity === 'a' ? 'ALWAYS' : 'BY DEFAULT'} AS IDENTITY`;
          if (s) def += ` (SEQUENCE NAME ${name(s.name)} ${options(s)})`;
        } else if (c.default !== null) {
          def += ` DEFAULT ${retarget(c.default)}`;
        }
        if (c.notnullName) {
          def += ` CONSTRAINT ${q(c.notnullName)} NOT NULL${c.notnullNoInherit ? ' NO INHERIT' : ''}`;
        } else if (c.notnull) {
          def += ' NOT NULL';
        }
        return def;
      });
      const unlogged = t.persistence === 'u' ? 'UNLOGGED ' : '';
      const withOptions = t.options ? ` WITH (${t.options.join(', ')})` : '';
      out.push(`CREATE ${unlogged}TABLE ${name(t.name)} (${columns.join(', ')})${withOptions}`);
    }
    // Seed rows: copied when the script runs, before constraints and triggers (as pg_dump does).
    for (const t of tables) {
      const found = await client.query(`SELECT 1 FROM ${source}.${q(t.name)} LIMIT 1`);
      if (!found.rowCount) continue;
      const cols = (t.columns ?? [])
        .filter((c) => c.generated === '')
        .map((c) => q(c.name))
        .join(', ');
      out.push(
        `INSERT INTO ${name(t.name)} (${cols}) OVERRIDING SYSTEM VALUE SELECT ${cols} FROM ${source}.${q(t.name)}`,
      );
    }

    const views = (
      await client.query<{ name: string; options: string[] | null; def: string }>(
        `WITH rels AS (${RELATIONS})
         SELECT relname AS name, reloptions AS options, pg_catalog.pg_get_viewdef(oid) AS def
           FROM rels WHERE relkind = 'v' ORDER BY oid`,
        args,
      )
    ).rows;
    for (const v of views) {
      const withOptions = v.options ? ` WITH (${v.options.join(', ')})` : '';
      out.push(
        `CREATE VIEW ${name(v.name)}${withOptions} AS ${retarget(v.def.trim().replace(/;$/, ''))}`,
      );
    }
    for (const f of functions.filter((fn) => fn.atomic)) out.push(retarget(f.def));

    const constraints = (
      await client.query<{ table: string; name: string; type: string; def: string }>(
        `SELECT r.relname AS table, c.conname AS name, c.contype::text AS type,
                pg_catalog.pg_get_constraintdef(c.oid) AS def
           FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_class r ON r.oid = c.conrelid
          WHERE r.relnamespace = $1::int8::oid AND r.oid <> $2::int8::oid
            AND c.contype IN ('p', 'u', 'c', 'x', 'f')
          ORDER BY c.contype = 'f', c.oid`,
        args,
      )
    ).rows;
    const addConstraint = (c: (typeof constraints)[number]) =>
      `ALTER TABLE ${name(c.table)} ADD CONSTRAINT ${q(c.name)} ${retarget(c.def)}`;
    for (const c of constraints.filter((con) => con.type !== 'f')) out.push(addConstraint(c));
    const indexes = (
      await client.query<{ def: string }>(
        `WITH rels AS (${RELATIONS})
         SELECT pg_catalog.pg_get_indexdef(i.indexrelid) AS def
           FROM pg_catalog.pg_index i JOIN rels t ON t.oid = i.indrelid
          WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c
                             WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                               AND c.contype IN ('p', 'u', 'x'))
          ORDER BY i.indexrelid`,
        args,
      )
    ).rows;
    for (const i of indexes) out.push(retarget(i.def));
    for (const c of constraints.filter((con) => con.type === 'f')) out.push(addConstraint(c));

    for (const t of tables) {
      if (t.replident === 'f') out.push(`ALTER TABLE ${name(t.name)} REPLICA IDENTITY FULL`);
      if (t.replident === 'n') out.push(`ALTER TABLE ${name(t.name)} REPLICA IDENTITY NOTHING`);
    }
    const replicaIndexes = (
      await client.query<{ table: string; index: string }>(
        `WITH rels AS (${RELATIONS})
         SELECT t.relname AS table, x.relname AS index FROM pg_catalog.pg_index i
           JOIN rels t ON t.oid = i.indrelid JOIN pg_catalog.pg_class x ON x.oid = i.indexrelid
          WHERE i.indisreplident AND t.relreplident = 'i'`,
        args,
      )
    ).rows;
    for (const r of replicaIndexes) {
      out.push(`ALTER TABLE ${name(r.table)} REPLICA IDENTITY USING INDEX ${q(r.index)}`);
    }

    const triggers = (
      await client.query<{ table: string; name: string; def: string; enabled: string }>(
        `WITH rels AS (${RELATIONS})
         SELECT c.relname AS table, t.tgname AS name, pg_catalog.pg_get_triggerdef(t.oid) AS def,
                t.tgenabled::text AS enabled
           FROM pg_catalog.pg_trigger t JOIN rels c ON c.oid = t.tgrelid
          WHERE NOT t.tgisinternal ORDER BY t.oid`,
        args,
      )
    ).rows;
    const triggerStates: Record<string, string> = {
      D: 'DISABLE TRIGGER',
      R: 'ENABLE REPLICA TRIGGER',
      A: 'ENABLE ALWAYS TRIGGER',
    };
    for (const t of triggers) {
      out.push(retarget(t.def));
      const state = triggerStates[t.enabled];
      if (state) out.push(`ALTER TABLE ${name(t.table)} ${state} ${q(t.name)}`);
    }

    for (const s of sequences) {
      if (s.deptype === 'a' && s.owner_table && s.owner_column) {
        out.push(
          `ALTER SEQUENCE ${name(s.name)} OWNED BY ${name(s.owner_table)}.${q(s.owner_column)}`,
        );
      }
      const { rows } = await client.query<{ last_value: string; is_called: boolean }>(
        `SELECT last_value::text, is_called FROM ${source}.${q(s.name)}`,
      );
      if (rows[0]?.is_called) {
        out.push(`SELECT pg_catalog.setval(${literal(name(s.name))}, ${rows[0].last_value}, true)`);
      }
    }

    const comments = (
      await client.query<{ type: string; identity: string; text: string }>(
        `WITH rels AS (${RELATIONS}) ${COMMENTS}`,
        args,
      )
    ).rows;
    for (const c of comments) {
      const target = retarget(c.type === 'schema' ? source : c.identity);
      out.push(`COMMENT ON ${COMMENT_KEYWORDS[c.type]} ${target} IS ${c.text}`);
    }

    const grants = (
      await client.query<{
        kind: string;
        identity: string;
        columns: string | null;
        grants: { grantee: string; privilege: string; grantable: boolean; foreign: boolean }[];
      }>(
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
        args,
      )
    ).rows;
    for (const g of grants) {
      const object =
        g.kind === 'SCHEMA'
          ? TARGET
          : g.kind === 'FUNCTION' || g.kind === 'PROCEDURE'
            ? retarget(g.identity)
            : name(unquote(g.identity));
      if (g.grants.some((e) => e.foreign)) {
        throw new UncloneableSchemaError(
          `a privilege on ${g.kind} ${g.identity ?? schema} granted by another role`,
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
    out.push('SET LOCAL check_function_bodies = on');
    return out.join(';\n') + ';\n';
  });
}

/**
 * What a copy of `schema` renamed to another name still needs (its target left as a placeholder
 * for {@link scriptFor}): the functions whose text names the schema, re-created as the copy
 * script creates them. Renaming a schema re-points everything PostgreSQL stores by oid (views,
 * defaults, constraints, triggers, SQL-standard function bodies) but not function source text.
 */
export async function renameScript(client: pg.ClientBase, schema: string): Promise<string> {
  return qualified(client, async () => {
    const { rows } = await client.query<{ def: string }>(
      `SELECT pg_catalog.pg_get_functiondef(p.oid) AS def FROM pg_catalog.pg_proc p
        WHERE p.pronamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1)
          AND p.prosqlbody IS NULL ORDER BY p.oid`,
      [schema],
    );
    const source = q(schema);
    const defs = rows.filter((r) => r.def.includes(source));
    if (defs.length === 0) return '';
    const out = ['SET LOCAL check_function_bodies = off'];
    for (const { def } of defs) out.push(def.replaceAll(source, TARGET));
    out.push('SET LOCAL check_function_bodies = on');
    return out.join(';\n') + ';\n';
  });
}

/** The bare name of an identifier printed by `quote_ident`. */
function unquote(identifier: string): string {
  return identifier.startsWith('"') ? identifier.slice(1, -1).replace(/""/g, '"') : identifier;
}

/**
 * A sorted, schema-name-free description of `schema`: relations, columns with types, defaults,
 * identity and storage, constraints, indexes, views, functions, triggers, sequences with their
 * owners and positions, privileges, comments, every object it contains, and a checksum of every
 * table's rows. Two schemas with equal fingerprints are the same to their users. The migration
 * history table is left out, and so is the column option `pg_attver`, a per-creation stamp some
 * server builds keep, which differs between any two creations of the same column.
 */
export async function schemaFingerprint(client: pg.ClientBase, schema: string): Promise<string[]> {
  return qualified(client, async () => {
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
              || ' last=' || coalesce(pg_catalog.pg_sequence_last_value(c.oid)::text, '-')
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
      [ids.nsp, ids.history],
    );
    const lines = rows.map((r) => r.line);
    const tables = await client.query<{ name: string }>(
      `WITH rels AS (${RELATIONS}) SELECT relname AS name FROM rels WHERE relkind = 'r'`,
      [ids.nsp, ids.history],
    );
    for (const { name } of tables.rows) {
      const { rows: data } = await client.query<{ line: string }>(
        `SELECT 'rows ' || $1 || ' ' || count(*) || ' '
                || pg_catalog.md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) AS line
           FROM ${q(schema)}.${q(name)} x`,
        [name],
      );
      lines.push(data[0].line);
    }
    return normalise(lines, schema).sort();
  });
}

/** Replaces `schema`, quoted or as a name of its own, with `<schema>`. */
function normalise(lines: string[], schema: string): string[] {
  const quoted = q(schema);
  const bare = new RegExp(
    `(?<![A-Za-z0-9_$"])${schema.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![A-Za-z0-9_$"])`,
    'g',
  );
  return lines.map((line) => line.replaceAll(quoted, '<schema>').replace(bare, '<schema>'));
}
