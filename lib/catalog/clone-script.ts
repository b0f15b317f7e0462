// The DDL and data script that re-creates a schema under another name, built from its catalog one
// kind of object at a time, in the order the objects depend on each other (as pg_dump orders
// them): sequences, functions, tables and their rows, views, constraints and indexes, triggers,
// sequence positions, comments, privileges.
import type pg from 'pg';
import { withSearchPath } from '../connection/sessions.js';
import { quoteIdentifier } from '../shared/identifiers.js';
import { COMMENT_KEYWORDS, COMMENTS, RELATIONS, schemaIds } from './catalog-sql.js';
import { UncloneableSchemaError } from './catalog.errors.js';
import { uncloneableReason } from './cloneability.js';
import { cloneGrants } from './clone-grants.js';
import { columnAndTableSettings } from './clone-settings.js';
import { CloneSource } from './clone-source.js';
import { repointFunctionDef } from './schema-references.js';
import { TARGET } from './script-target.js';

const q = quoteIdentifier;

/**
 * The DDL and data statements that re-create `schema`'s objects (all but its migration history)
 * in another, empty schema: one text to send as one query, its target left as a placeholder
 * for `scriptFor`. Rows are copied from `schema` when the script runs; sequence positions
 * are those of now.
 *
 * @throws UncloneableSchemaError naming the first object the script would not reproduce.
 */
export async function cloneScript(client: pg.ClientBase, schema: string): Promise<string> {
  // With pg_catalog alone on the path, PostgreSQL qualifies every name it deparses.
  return withSearchPath(client, 'pg_catalog', async () => {
    const ids = await schemaIds(client, schema);
    const reason = await uncloneableReason(client, schema, ids);
    if (reason !== undefined) throw new UncloneableSchemaError(reason);
    const source = new CloneSource(client, schema, ids);
    // Read in this order, and each later step reads in turn: the statements keep their order.
    const sequences = await readSequences(source);
    const functions = await readFunctions(source);
    const tables = await readTables(source);
    const statements = [
      'SET LOCAL check_function_bodies = off',
      ...createSequences(source, sequences),
      // Bodies in quotes are not checked (check_function_bodies is off): they may name tables
      // created below. SQL-standard bodies are parsed at once, so they come after the tables.
      ...functions.filter((fn) => !fn.atomic).map((f) => repointFunctionDef(f.def, schema, TARGET)),
      ...createTables(source, tables, sequences),
      ...(await copySeedRows(source, tables)),
      ...(await createViews(source)),
      ...functions.filter((fn) => fn.atomic).map((f) => repointFunctionDef(f.def, schema, TARGET)),
      ...(await addConstraintsAndIndexes(source)),
      ...(await setReplicaIdentities(source, tables)),
      ...(await columnAndTableSettings(source)),
      ...(await createTriggers(source)),
      ...(await ownAndPositionSequences(source, sequences)),
      ...(await addComments(source)),
      ...(await cloneGrants(source)),
      'SET LOCAL check_function_bodies = on',
    ];
    return statements.join(';\n') + ';\n';
  });
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

interface TableInfo {
  oid: number;
  name: string;
  persistence: string;
  options: string[] | null;
  replident: string;
  columns: ColumnInfo[];
  has_rows: boolean;
}

function readSequences(source: CloneSource): Promise<SequenceInfo[]> {
  return source.rows<SequenceInfo>(
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
  );
}

function readFunctions(source: CloneSource): Promise<{ def: string; atomic: boolean }[]> {
  return source.rows(
    `SELECT pg_catalog.pg_get_functiondef(p.oid) AS def, p.prosqlbody IS NOT NULL AS atomic
       FROM pg_catalog.pg_proc p WHERE p.pronamespace = $1::int8::oid ORDER BY p.oid`,
    [source.ids.nsp],
  );
}

function readTables(source: CloneSource): Promise<TableInfo[]> {
  return source.rows<TableInfo>(
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
  );
}

function sequenceOptions(s: SequenceInfo): string {
  return `INCREMENT BY ${s.increment} MINVALUE ${s.min} MAXVALUE ${s.max} START WITH ${s.start} CACHE ${s.cache} ${s.cycle ? 'CYCLE' : 'NO CYCLE'}`;
}

/** Sequences of their own (identity sequences come with their column). */
function createSequences(source: CloneSource, sequences: readonly SequenceInfo[]): string[] {
  return sequences
    .filter((s) => s.deptype !== 'i')
    .map((s) => `CREATE SEQUENCE ${source.inTarget(s.name)} AS ${s.type} ${sequenceOptions(s)}`);
}

function createTables(
  source: CloneSource,
  tables: readonly TableInfo[],
  sequences: readonly SequenceInfo[],
): string[] {
  const identityOf = new Map<string, SequenceInfo>();
  for (const s of sequences) {
    if (s.deptype === 'i') identityOf.set(`${s.owner_table}.${s.owner_column}`, s);
  }
  return tables.map((t) => {
    const columns = (t.columns ?? []).map((c) => columnDefinition(source, t, c, identityOf));
    const unlogged = t.persistence === 'u' ? 'UNLOGGED ' : '';
    const withOptions = t.options ? ` WITH (${t.options.join(', ')})` : '';
    return `CREATE ${unlogged}TABLE ${source.inTarget(t.name)} (${columns.join(', ')})${withOptions}`;
  });
}

function columnDefinition(
  source: CloneSource,
  table: TableInfo,
  c: ColumnInfo,
  identityOf: ReadonlyMap<string, SequenceInfo>,
): string {
  let def = `${q(c.name)} ${source.retarget(c.type)}`;
  if (c.collation) def += ` COLLATE ${c.collation}`;
  if (c.generated === 's' || c.generated === 'v') {
    def += ` GENERATED ALWAYS AS (${source.retarget(c.default ?? '')}) ${c.generated === 's' ? 'STORED' : 'VIRTUAL'}`;
  } else if (c.identity === 'a' || c.identity === 'd') {
    const s = identityOf.get(`${table.name}.${c.name}`);
    def += ` GENERATED ${c.identity === 'a' ? 'ALWAYS' : 'BY DEFAULT'} AS IDENTITY`;
    if (s) def += ` (SEQUENCE NAME ${source.inTarget(s.name)} ${sequenceOptions(s)})`;
  } else if (c.default !== null) {
    def += ` DEFAULT ${source.retarget(c.default)}`;
  }
  if (c.notnullName) {
    def += ` CONSTRAINT ${q(c.notnullName)} NOT NULL${c.notnullNoInherit ? ' NO INHERIT' : ''}`;
  } else if (c.notnull) {
    def += ' NOT NULL';
  }
  return def;
}

/** Seed rows: copied when the script runs, before constraints and triggers (as pg_dump does). */
async function copySeedRows(source: CloneSource, tables: readonly TableInfo[]): Promise<string[]> {
  const out: string[] = [];
  for (const t of tables) {
    const found = await source.client.query(`SELECT 1 FROM ${source.inSource(t.name)} LIMIT 1`);
    if (!found.rowCount) continue;
    const cols = (t.columns ?? [])
      .filter((c) => c.generated === '')
      .map((c) => q(c.name))
      .join(', ');
    out.push(
      `INSERT INTO ${source.inTarget(t.name)} (${cols}) OVERRIDING SYSTEM VALUE SELECT ${cols} FROM ${source.inSource(t.name)}`,
    );
  }
  return out;
}

async function createViews(source: CloneSource): Promise<string[]> {
  const views = await source.rows<{ name: string; options: string[] | null; def: string }>(
    `WITH rels AS (${RELATIONS})
     SELECT relname AS name, reloptions AS options, pg_catalog.pg_get_viewdef(oid) AS def
       FROM rels WHERE relkind = 'v' ORDER BY oid`,
  );
  return views.map((v) => {
    const withOptions = v.options ? ` WITH (${v.options.join(', ')})` : '';
    return `CREATE VIEW ${source.inTarget(v.name)}${withOptions} AS ${source.retarget(v.def.trim().replace(/;$/, ''))}`;
  });
}

/** Constraints other than foreign keys, then indexes, then foreign keys (which need them). */
async function addConstraintsAndIndexes(source: CloneSource): Promise<string[]> {
  const constraints = await source.rows<{ table: string; name: string; type: string; def: string }>(
    `SELECT r.relname AS table, c.conname AS name, c.contype::text AS type,
            pg_catalog.pg_get_constraintdef(c.oid) AS def
       FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_class r ON r.oid = c.conrelid
      WHERE r.relnamespace = $1::int8::oid AND r.oid <> $2::int8::oid
        AND c.contype IN ('p', 'u', 'c', 'x', 'f')
      ORDER BY c.contype = 'f', c.oid`,
  );
  const addConstraint = (c: (typeof constraints)[number]) =>
    `ALTER TABLE ${source.inTarget(c.table)} ADD CONSTRAINT ${q(c.name)} ${source.retarget(c.def)}`;
  const indexes = await source.rows<{ def: string }>(
    `WITH rels AS (${RELATIONS})
     SELECT pg_catalog.pg_get_indexdef(i.indexrelid) AS def
       FROM pg_catalog.pg_index i JOIN rels t ON t.oid = i.indrelid
      WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c
                         WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid
                           AND c.contype IN ('p', 'u', 'x'))
      ORDER BY i.indexrelid`,
  );
  return [
    ...constraints.filter((con) => con.type !== 'f').map(addConstraint),
    ...indexes.map((i) => source.retarget(i.def)),
    ...constraints.filter((con) => con.type === 'f').map(addConstraint),
  ];
}

async function setReplicaIdentities(
  source: CloneSource,
  tables: readonly TableInfo[],
): Promise<string[]> {
  const out: string[] = [];
  for (const t of tables) {
    if (t.replident === 'f')
      out.push(`ALTER TABLE ${source.inTarget(t.name)} REPLICA IDENTITY FULL`);
    if (t.replident === 'n') {
      out.push(`ALTER TABLE ${source.inTarget(t.name)} REPLICA IDENTITY NOTHING`);
    }
  }
  const replicaIndexes = await source.rows<{ table: string; index: string }>(
    `WITH rels AS (${RELATIONS})
     SELECT t.relname AS table, x.relname AS index FROM pg_catalog.pg_index i
       JOIN rels t ON t.oid = i.indrelid JOIN pg_catalog.pg_class x ON x.oid = i.indexrelid
      WHERE i.indisreplident AND t.relreplident = 'i'`,
  );
  for (const r of replicaIndexes) {
    out.push(`ALTER TABLE ${source.inTarget(r.table)} REPLICA IDENTITY USING INDEX ${q(r.index)}`);
  }
  return out;
}

const TRIGGER_STATES: Readonly<Record<string, string>> = {
  D: 'DISABLE TRIGGER',
  R: 'ENABLE REPLICA TRIGGER',
  A: 'ENABLE ALWAYS TRIGGER',
};

async function createTriggers(source: CloneSource): Promise<string[]> {
  const triggers = await source.rows<{ table: string; name: string; def: string; enabled: string }>(
    `WITH rels AS (${RELATIONS})
     SELECT c.relname AS table, t.tgname AS name, pg_catalog.pg_get_triggerdef(t.oid) AS def,
            t.tgenabled::text AS enabled
       FROM pg_catalog.pg_trigger t JOIN rels c ON c.oid = t.tgrelid
      WHERE NOT t.tgisinternal ORDER BY t.oid`,
  );
  const out: string[] = [];
  for (const t of triggers) {
    out.push(source.retarget(t.def));
    const state = TRIGGER_STATES[t.enabled];
    if (state) out.push(`ALTER TABLE ${source.inTarget(t.table)} ${state} ${q(t.name)}`);
  }
  return out;
}

/**
 * Each sequence's owning column, and its position as of now: `last_value` and `is_called` both,
 * so a sequence restarted (`RESTART WITH 1041`, or `setval(…, false)`) hands out the same next
 * value in the copy.
 */
async function ownAndPositionSequences(
  source: CloneSource,
  sequences: readonly SequenceInfo[],
): Promise<string[]> {
  const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;
  const out: string[] = [];
  for (const s of sequences) {
    if (s.deptype === 'a' && s.owner_table && s.owner_column) {
      out.push(
        `ALTER SEQUENCE ${source.inTarget(s.name)} OWNED BY ${source.inTarget(s.owner_table)}.${q(s.owner_column)}`,
      );
    }
    const { rows } = await source.client.query<{ last_value: string; is_called: boolean }>(
      `SELECT last_value::text, is_called FROM ${source.inSource(s.name)}`,
    );
    if (rows[0]) {
      out.push(
        `SELECT pg_catalog.setval(${literal(source.inTarget(s.name))}, ${rows[0].last_value}, ${rows[0].is_called})`,
      );
    }
  }
  return out;
}

async function addComments(source: CloneSource): Promise<string[]> {
  const comments = await source.rows<{ type: string; identity: string; text: string }>(
    `WITH rels AS (${RELATIONS}) ${COMMENTS}`,
  );
  return comments.map((c) => {
    const target = source.retarget(c.type === 'schema' ? source.quoted : c.identity);
    return `COMMENT ON ${COMMENT_KEYWORDS[c.type]} ${target} IS ${c.text}`;
  });
}
