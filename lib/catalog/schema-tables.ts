// The tables and sequences of a schema, as a copy of its rows needs them.
import type pg from 'pg';
import { qualifiedName } from '../shared/identifiers.js';

/** A table of a schema and the columns a copy writes (generated ones are left out). */
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

const NAMESPACE = '(SELECT oid FROM pg_namespace WHERE nspname = $1)';

/**
 * The schema's tables (partitions excluded: rows go through their parent), parents before the
 * tables whose foreign keys point at them, so rows can be inserted in this order.
 */
export async function tablesInInsertOrder(
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
export async function sequencePositions(
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
      `SELECT last_value::text, is_called FROM ${qualifiedName(schema, name)}`,
    );
    values.push({ name, lastValue: at[0].last_value, isCalled: at[0].is_called });
  }
  return values;
}
