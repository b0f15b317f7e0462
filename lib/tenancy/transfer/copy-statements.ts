// The statements a copy of a tenant's rows runs on its target: emptied, triggers off while rows
// go in, sequences carried over.
import type pg from 'pg';
import { qualifiedName, quoteIdentifier } from '../../shared/identifiers.js';
import type { CatalogTable, SequencePosition } from '../../catalog/schema-tables.js';

/** Moves `schema`'s sequences to the positions given. */
export async function setSequences(
  client: pg.ClientBase,
  schema: string,
  values: readonly SequencePosition[],
): Promise<void> {
  for (const v of values) {
    await client.query('SELECT setval($1::regclass, $2::bigint, $3)', [
      qualifiedName(schema, v.name),
      v.lastValue,
      v.isCalled,
    ]);
  }
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
      `ALTER TABLE ${qualifiedName(schema, t.name)} ${enabled ? 'ENABLE' : 'DISABLE'} TRIGGER USER`,
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
  await client.query(`TRUNCATE ${tables.map((t) => qualifiedName(schema, t.name)).join(', ')}`);
}

/** Quoted column names for SQL: `"a", "b"`. */
export function selectList(columns: readonly string[]): string {
  return columns.map((c) => quoteIdentifier(c)).join(', ');
}

/** A column list for SQL: `("a", "b")`. */
export function columnList(columns: readonly string[]): string {
  return `(${selectList(columns)})`;
}
