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

/** The `ALTER TABLE … TRIGGER` form that gives a trigger each `pg_trigger.tgenabled` state. */
const TRIGGER_STATES: Readonly<Record<string, string>> = {
  O: 'ENABLE TRIGGER',
  A: 'ENABLE ALWAYS TRIGGER',
  R: 'ENABLE REPLICA TRIGGER',
  D: 'DISABLE TRIGGER',
};

/**
 * Disables user triggers on `tables`, so copied rows are written as they are. Returns what puts
 * every user trigger of the schema back in the state the migrations left it: enabled, disabled,
 * `ALWAYS` or `REPLICA` (a plain `ENABLE TRIGGER USER` would turn a disabled trigger on).
 */
export async function pauseUserTriggers(
  client: pg.ClientBase,
  schema: string,
  tables: readonly CatalogTable[],
): Promise<() => Promise<void>> {
  const { rows: states } = await client.query<{ tbl: string; name: string; state: string }>(
    `SELECT c.relname AS tbl, t.tgname AS name, t.tgenabled AS state
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
      WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
        AND NOT t.tgisinternal AND t.tgenabled <> 'O'
      ORDER BY t.tgparentid <> 0, c.relname, t.tgname`,
    [schema],
  );
  for (const t of tables) {
    await client.query(`ALTER TABLE ${qualifiedName(schema, t.name)} DISABLE TRIGGER USER`);
  }
  return async () => {
    for (const t of tables) {
      await client.query(`ALTER TABLE ${qualifiedName(schema, t.name)} ENABLE TRIGGER USER`);
    }
    // Parents' triggers first: altering one also alters its partitions' clones.
    for (const t of states) {
      await client.query(
        `ALTER TABLE ${qualifiedName(schema, t.tbl)} ${TRIGGER_STATES[t.state]} ${quoteIdentifier(t.name)}`,
      );
    }
  };
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

/**
 * The message of an error that failed a copy, with what to do when PostgreSQL refused an enum
 * value the replayed migrations added (`55P04`): a copy replays the migrations and loads the rows
 * in one transaction, and PostgreSQL 16 and older cannot use a value added by `ALTER TYPE … ADD
 * VALUE` in the transaction that adds it.
 */
export function copyFailure(err: unknown): string {
  const { code, message } = err as { code?: string; message: string };
  if (code !== '55P04') return message;
  return `${message}: a row uses an enum value that the tenant's migrations add with ALTER TYPE … ADD VALUE, and a copy replays those migrations and loads the rows in one transaction, which PostgreSQL 16 and older refuse. Copy the tenant on PostgreSQL 17 or later, or copy the schema with pg_dump`;
}
