import type pg from 'pg';
import { quoteIdentifier } from '../shared/identifiers.js';
import { matchesChecksum, type MigrationFile } from '../migrations/migration-files.js';
import { historyTable } from '../migrations/migration-history.js';

/** A table of a tenant schema and the columns a copy writes (generated ones are left out). */
export interface CatalogTable {
  /** Unqualified table name. */
  readonly name: string;
  /** Columns, in table order, without generated columns. */
  readonly columns: readonly string[];
  /**
   * Per column, its type when the type lives in the schema itself (an enum, a domain: its
   * `format_type`, e.g. `tenant_a.mood[]`), otherwise `null`. A copy into another schema casts
   * such columns through text to the other schema's type.
   */
  readonly localTypes: readonly (string | null)[];
}

/** A sequence's position, carried over so new rows never collide with copied ones. */
export interface SequencePosition {
  /** The sequence's name (unqualified). */
  readonly name: string;
  /** Its `last_value`, as text (a bigint). */
  readonly lastValue: string;
  /** Its `is_called`: whether `last_value` was already handed out. */
  readonly isCalled: boolean;
}

/** A row of a schema's migration history. */
export interface MigrationHistoryEntry {
  /** The file's number. */
  readonly version: number;
  /** The file name, e.g. `003_add_index.sql`. */
  readonly name: string;
  /** SHA-256 (hex) of the file's text when it was applied. */
  readonly checksum: string;
}

const NAMESPACE = '(SELECT oid FROM pg_namespace WHERE nspname = $1)';

/**
 * The schema's tables (partitions excluded: rows go through their parent), parents before the
 * tables whose foreign keys point at them, so rows can be inserted in this order.
 */
export async function catalogTables(
  client: pg.ClientBase,
  schema: string,
): Promise<CatalogTable[]> {
  const { rows } = await client.query<{
    name: string;
    columns: string[];
    local_types: (string | null)[];
  }>(
    `SELECT c.relname AS name,
            array_agg(a.attname::text ORDER BY a.attnum) AS columns,
            array_agg(CASE WHEN t.typnamespace = c.relnamespace
                             OR e.typnamespace = c.relnamespace
                           THEN format_type(a.atttypid, a.atttypmod) END ORDER BY a.attnum) AS local_types
       FROM pg_class c
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                          AND a.attgenerated = ''
       JOIN pg_type t ON t.oid = a.atttypid
       LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typelem <> 0
      WHERE c.relnamespace = ${NAMESPACE} AND c.relkind IN ('r', 'p') AND NOT c.relispartition
      GROUP BY c.relname ORDER BY c.relname`,
    [schema],
  );
  const { rows: edges } = await client.query<{ child: string; parent: string }>(
    `SELECT ch.relname AS child, pa.relname AS parent
       FROM pg_constraint k
       JOIN pg_class ch ON ch.oid = k.conrelid
       JOIN pg_class pa ON pa.oid = k.confrelid
      WHERE k.contype = 'f' AND k.connamespace = ${NAMESPACE} AND pa.relnamespace = k.connamespace
        AND ch.oid <> pa.oid`,
    [schema],
  );
  // Kahn's algorithm; tables in a cycle of foreign keys keep name order at the end.
  const parents = new Map(rows.map((r) => [r.name, new Set<string>()]));
  for (const e of edges) parents.get(e.child)?.add(e.parent);
  const ordered: CatalogTable[] = [];
  const placed = new Set<string>();
  let progress = true;
  while (progress) {
    progress = false;
    for (const r of rows) {
      if (placed.has(r.name)) continue;
      if ([...parents.get(r.name)!].every((p) => placed.has(p) || !parents.has(p))) {
        ordered.push({ name: r.name, columns: r.columns, localTypes: r.local_types });
        placed.add(r.name);
        progress = true;
      }
    }
  }
  for (const r of rows) {
    if (!placed.has(r.name)) {
      ordered.push({ name: r.name, columns: r.columns, localTypes: r.local_types });
    }
  }
  return ordered;
}

/** Current position of every sequence of the schema. */
export async function sequenceValues(
  client: pg.ClientBase,
  schema: string,
): Promise<SequencePosition[]> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT relname AS name FROM pg_class WHERE relnamespace = ${NAMESPACE} AND relkind = 'S' ORDER BY relname`,
    [schema],
  );
  const values: SequencePosition[] = [];
  for (const { name } of rows) {
    const { rows: at } = await client.query<{ last_value: string; is_called: boolean }>(
      `SELECT last_value::text, is_called FROM ${qualified(schema, name)}`,
    );
    values.push({ name, lastValue: at[0].last_value, isCalled: at[0].is_called });
  }
  return values;
}

/** Moves `schema`'s sequences to the positions given. */
export async function setSequences(
  client: pg.ClientBase,
  schema: string,
  values: readonly SequencePosition[],
): Promise<void> {
  for (const v of values) {
    await client.query('SELECT setval($1::regclass, $2::bigint, $3)', [
      qualified(schema, v.name),
      v.lastValue,
      v.isCalled,
    ]);
  }
}

/** The schema's migration history, oldest first. */
export async function readHistory(
  client: pg.ClientBase,
  schema: string,
): Promise<MigrationHistoryEntry[]> {
  const { rows } = await client.query<MigrationHistoryEntry>(
    `SELECT version, name, checksum FROM ${historyTable(schema)} ORDER BY version`,
  );
  return rows;
}

/**
 * Why `history` is not a prefix of `files` (an applied file edited, deleted or renumbered; or a
 * history newer than the files), or `undefined` when it is.
 */
export function historyMismatch(
  history: readonly MigrationHistoryEntry[],
  files: readonly MigrationFile[],
): string | undefined {
  if (history.length > files.length) {
    return `it records ${history.length} migration(s) and the migrations folder has ${files.length}: it is newer than this application's migrations`;
  }
  for (let i = 0; i < history.length; i++) {
    const file = files[i];
    const entry = history[i];
    if (entry.version !== file.version || !matchesChecksum(file, entry.checksum)) {
      return `migration ${entry.name} differs from ${file.name} in the migrations folder (checksum or number)`;
    }
  }
  return undefined;
}

/**
 * A description of everything the schema defines — relations, columns with types, defaults,
 * identity and generation, constraints, indexes, triggers, functions, views, sequences, types,
 * comments — with the schema's own name replaced by `{{schema}}`, sorted: two schemas built
 * alike give equal lists wherever they live. Owners and grants are left out (roles differ
 * between databases).
 */
export async function schemaFingerprint(client: pg.ClientBase, schema: string): Promise<string[]> {
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
  return rows.map((r) => normaliseSchemaName(r.line, schema, '{{schema}}')).sort();
}

/**
 * `text` with every reference to schema `from` (`from.` or `"from".`, not part of a longer name)
 * replaced by `to` — a placeholder or another schema's quoted name.
 */
export function normaliseSchemaName(text: string, from: string, to: string): string {
  const escaped = from.replace(/[$]/g, '\\$&');
  return text.replace(
    new RegExp(`(?<![A-Za-z0-9_$"])("${escaped}"|${escaped})\\.`, 'g'),
    () => `${to}.`,
  );
}

/** The first difference between two fingerprints, or `undefined` when they are equal. */
export function fingerprintDifference(
  expected: readonly string[],
  actual: readonly string[],
): string | undefined {
  const a = new Set(actual);
  const e = new Set(expected);
  const missing = expected.find((line) => !a.has(line));
  if (missing) return `missing: ${missing.slice(0, 200)}`;
  const extra = actual.find((line) => !e.has(line));
  if (extra) return `unexpected: ${extra.slice(0, 200)}`;
  return undefined;
}

/** `"schema"."name"`. */
export function qualified(schema: string, name: string): string {
  return `${quoteIdentifier(schema)}.${quoteIdentifier(name)}`;
}

/** Disables (or enables again) user triggers on `tables`, so copied rows are written as they are. */
export async function setUserTriggers(
  client: pg.ClientBase,
  schema: string,
  tables: readonly CatalogTable[],
  enabled: boolean,
): Promise<void> {
  for (const t of tables) {
    await client.query(
      `ALTER TABLE ${qualified(schema, t.name)} ${enabled ? 'ENABLE' : 'DISABLE'} TRIGGER USER`,
    );
  }
}

/** Empties `tables` (rows seeded by the migrations replayed, which the copy replaces). */
export async function truncateAll(
  client: pg.ClientBase,
  schema: string,
  tables: readonly CatalogTable[],
): Promise<void> {
  if (tables.length === 0) return;
  await client.query(`TRUNCATE ${tables.map((t) => qualified(schema, t.name)).join(', ')}`);
}

/** Quoted column names for SQL: `"a", "b"`. */
export function selectList(columns: readonly string[]): string {
  return columns.map((c) => quoteIdentifier(c)).join(', ');
}

/** A column list for SQL: `("a", "b")`. */
export function columnList(columns: readonly string[]): string {
  return `(${selectList(columns)})`;
}
