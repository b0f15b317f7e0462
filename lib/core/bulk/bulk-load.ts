import { createRequire } from 'node:module';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFromStdin } from 'pg-copy-streams';
import { BulkLoadColumnsError, BulkLoadRowError } from './bulk-load.errors.js';
import { holdConnection, recordOperation, type HeldConnection } from '../query/held-connection.js';
import { quoteIdentifier } from '../../shared/identifiers.js';
import type { QueryRunner } from '../query/query-runner.js';

// pg's own conversion of a bind parameter to text (dates, arrays, JSON, toPostgres()), so a
// value loaded by COPY is stored exactly as the same value passed to query() would be.
const { prepareValue } = createRequire(import.meta.url)('pg/lib/utils.js') as {
  prepareValue: (value: unknown) => string | Buffer | null | undefined;
};

/**
 * One row of a bulk load: an array of values in column order, or an object whose keys are
 * exactly the column names. `null` and `undefined` are SQL `NULL`; other values convert as bind
 * parameters do in `pg` (a `Date` to a timestamp, a `Buffer` to `bytea`, a plain object to JSON,
 * an array to a PostgreSQL array: pass `JSON.stringify(list)` for a JSON array).
 */
export type BulkRow = readonly unknown[] | Readonly<Record<string, unknown>>;

/** Rows for {@link SchemaDb.copyFrom}: an array, any iterable, or an object-mode readable stream. */
export type BulkRowSource = Iterable<BulkRow> | AsyncIterable<BulkRow>;

/** What `insertMany()` does with a row that conflicts with an existing one. */
export interface OnConflict {
  /**
   * The conflict target: the columns of a unique index or constraint. Required for
   * `'update'`; with `'nothing'`, omitted means any unique violation.
   */
  readonly target?: readonly string[];
  /** `'nothing'`: skip the row. `'update'`: update the existing row from the new one. */
  readonly action: 'nothing' | 'update';
  /**
   * With `'update'`, the columns set from the new row (`EXCLUDED`).
   * Default: every inserted column that is not in `target`.
   */
  readonly update?: readonly string[];
}

/** Options of {@link SchemaDb.insertMany}. */
export interface InsertManyOptions {
  /**
   * The columns to insert, in the order of array rows. Default: the keys of the first row (then
   * every row must be an object with exactly those keys).
   */
  readonly columns?: readonly string[];
  /** What to do with rows that violate a unique constraint. Default: fail the statement. */
  readonly onConflict?: OnConflict;
}

/** Rows are sent to the server in chunks of about this many characters. */
const COPY_CHUNK_CHARS = 64 * 1024;
const COPY_ESCAPES = /[\\\t\n\r]/;
const COPY_ESCAPES_ALL = /[\\\t\n\r]/g;
const COPY_ESCAPE_OF: Record<string, string> = {
  '\\': '\\\\',
  '\t': '\\t',
  '\n': '\\n',
  '\r': '\\r',
};

/** Quotes a column list; refuses an empty one or a column named twice. */
export function columnList(table: string, columns: readonly string[]): string {
  const names = columns; // Array.isArray() below would widen `columns` to any[]
  if (!Array.isArray(columns) || columns.length === 0) {
    throw new BulkLoadColumnsError(table, 'the column list is empty: name at least one column.');
  }
  if (new Set(columns).size !== columns.length) {
    throw new BulkLoadColumnsError(table, 'the column list names a column more than once.');
  }
  return names.map((c) => quoteIdentifier(c, 'column')).join(', ');
}

/** The values of `row` in column order. @throws BulkLoadRowError */
export function valuesOf(
  table: string,
  columns: readonly string[],
  row: unknown,
  index: number,
): readonly unknown[] {
  if (Array.isArray(row)) {
    if (row.length !== columns.length) {
      throw new BulkLoadRowError(
        table,
        index,
        `has ${row.length} values for ${columns.length} columns`,
      );
    }
    return row;
  }
  if (row === null || typeof row !== 'object') {
    throw new BulkLoadRowError(table, index, 'is neither an array nor an object');
  }
  const record = row as Record<string, unknown>;
  const values = new Array<unknown>(columns.length);
  for (let i = 0; i < columns.length; i++) {
    const column = columns[i];
    if (!(column in record)) {
      throw new BulkLoadRowError(table, index, `has no key ${JSON.stringify(column)}`);
    }
    values[i] = record[column];
  }
  if (Object.keys(record).length !== columns.length) {
    const extra = Object.keys(record).find((k) => !columns.includes(k));
    throw new BulkLoadRowError(
      table,
      index,
      `has key ${JSON.stringify(extra)}, not a listed column`,
    );
  }
  return values;
}

/** One value in COPY's text format. */
function copyValue(value: unknown): string {
  if (value === null || value === undefined) return '\\N';
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (Buffer.isBuffer(value)) return `\\\\x${value.toString('hex')}`;
  const text = typeof value === 'string' ? value : prepareValue(value);
  if (text === null || text === undefined) return '\\N';
  if (Buffer.isBuffer(text)) return `\\\\x${text.toString('hex')}`;
  const s = String(text);
  return COPY_ESCAPES.test(s) ? s.replace(COPY_ESCAPES_ALL, (c) => COPY_ESCAPE_OF[c]) : s;
}

/** One row as a line of COPY text, its shape checked. */
function copyLine(table: string, columns: readonly string[], row: unknown, index: number): string {
  const values = valuesOf(table, columns, row, index);
  let line = copyValue(values[0]);
  for (let i = 1; i < values.length; i++) line += '\t' + copyValue(values[i]);
  return line + '\n';
}

/**
 * The rows as COPY text, in chunks; validates each row's shape on the way. A synchronous source
 * (an array) is read without an `await` per row: a million rows would otherwise cost a million
 * promise turns.
 */
async function* copyText(
  table: string,
  columns: readonly string[],
  rows: BulkRowSource,
): AsyncGenerator<string> {
  let chunk = '';
  let index = 0;
  if (Symbol.iterator in rows) {
    for (const row of rows) {
      chunk += copyLine(table, columns, row, index++);
      if (chunk.length >= COPY_CHUNK_CHARS) {
        yield chunk;
        chunk = '';
      }
    }
  } else {
    for await (const row of rows) {
      chunk += copyLine(table, columns, row, index++);
      if (chunk.length >= COPY_CHUNK_CHARS) {
        yield chunk;
        chunk = '';
      }
    }
  }
  if (chunk.length > 0) yield chunk;
}

/**
 * `COPY table (columns) FROM STDIN` fed from `rows`, with backpressure from the socket. One
 * statement: a bad row (a type error on the server, a row of the wrong shape, a source stream
 * that fails) aborts it and nothing is written. Inside a transaction it runs in a savepoint, so
 * the failure leaves the transaction usable for a caller that catches it.
 */
export async function copyRows(
  runner: QueryRunner,
  schema: string | null,
  table: string,
  columns: readonly string[],
  rows: BulkRowSource,
): Promise<number> {
  const text = `COPY ${table} (${columnList(table, columns)}) FROM STDIN`;
  if (rows === null || typeof rows !== 'object') {
    throw new TypeError('copyFrom rows must be an array, an iterable or a readable stream.');
  }
  if (Array.isArray(rows) && rows.length === 0) return 0;
  const started = performance.now();
  let rowCount: number | null = null;
  let error: Error | undefined;
  let held: HeldConnection | undefined;
  try {
    held = await holdConnection(runner);
    const conn = held;
    rowCount = await inSavepoint(conn, 'pgt_copy', async () => {
      const copy = conn.client.query(copyFromStdin(text));
      await pipeline(copyText(table, columns, rows), copy);
      return copy.rowCount;
    });
    return rowCount;
  } catch (err) {
    error = wrapUnknownColumn(table, err);
    throw error;
  } finally {
    held?.release(error);
    recordOperation(runner, started, { sql: text, params: undefined, schema, rowCount, error });
  }
}

/** Inside a transaction, runs `fn` in a savepoint that a failure rolls back to. */
async function inSavepoint<T>(
  conn: HeldConnection,
  name: string,
  fn: () => Promise<T>,
): Promise<T> {
  const tx = conn.transaction;
  if (tx === null) return fn();
  await tx.query(`SAVEPOINT ${name}`);
  try {
    const result = await fn();
    await tx.query(`RELEASE SAVEPOINT ${name}`);
    return result;
  } catch (err) {
    // If this fails too, the transaction is aborted and its own ROLLBACK cleans up.
    await tx
      .query(`ROLLBACK TO SAVEPOINT ${name}`)
      .then(() => tx.query(`RELEASE SAVEPOINT ${name}`))
      .catch(() => undefined);
    throw err;
  }
}

/** The server's "column … does not exist" (42703) as a typed error naming the table. */
export function wrapUnknownColumn(table: string, err: unknown): Error {
  if ((err as { code?: string }).code === '42703') {
    return new BulkLoadColumnsError(
      table,
      `${(err as Error).message}. Check the column names against the table's definition.`,
      { cause: err },
    );
  }
  return err as Error;
}

/** A column's SQL type and whether it is an array type. */
interface ColumnType {
  readonly type: string;
  readonly isArray: boolean;
}

// Column types per pool and qualified table, read once from the catalog: unnest() needs each
// array parameter typed. An entry is dropped when a statement using it fails, so a migration
// that changes a column's type is picked up on the next call.
const columnTypeCache = new WeakMap<pg.Pool, Map<string, Map<string, ColumnType>>>();

const COLUMN_TYPES_SQL = `SELECT a.attname AS name, format_type(a.atttypid, NULL) AS type, t.typcategory = 'A' AS is_array
  FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
  WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped`;

/** How `insertMany` runs SQL: through the manager, so SQL templates, transactions and hooks apply. */
export type SqlExecutor = (
  text: string,
  params: readonly unknown[],
) => Promise<pg.QueryResult<pg.QueryResultRow>>;

async function columnTypes(
  pool: pg.Pool,
  table: string,
  run: SqlExecutor,
): Promise<Map<string, ColumnType>> {
  let tables = columnTypeCache.get(pool);
  if (tables === undefined) {
    tables = new Map();
    columnTypeCache.set(pool, tables);
  }
  const cached = tables.get(table);
  if (cached !== undefined) return cached;
  const result = await run(COLUMN_TYPES_SQL, [table]);
  const types = new Map<string, ColumnType>();
  for (const row of result.rows as { name: string; type: string; is_array: boolean }[]) {
    types.set(row.name, { type: row.type, isArray: row.is_array });
  }
  tables.set(table, types);
  return types;
}

/**
 * `INSERT INTO table (columns) SELECT * FROM unnest($1::type[], …)`: one statement and one
 * parameter per column however many rows, so it is not bound by the 65,535-parameter limit of
 * a multi-row `VALUES` and the server parses one short statement. Returns the rows inserted
 * (or updated, with `onConflict: { action: 'update' }`).
 */
export async function insertRows(
  pool: pg.Pool,
  table: string,
  rows: readonly BulkRow[],
  options: InsertManyOptions,
  run: SqlExecutor,
): Promise<number> {
  const list = rows; // Array.isArray() below would widen `rows` to any[]
  if (!Array.isArray(rows)) {
    throw new TypeError('insertMany rows must be an array of rows.');
  }
  if (list.length === 0) return 0;
  const first = list[0];
  const columns =
    options.columns ??
    (first !== null && typeof first === 'object' && !Array.isArray(first)
      ? Object.keys(first)
      : []);
  const quoted = columnList(table, columns);
  const types = await columnTypes(pool, table, run);
  const casts = columns.map((column) => {
    const info = types.get(column);
    if (info === undefined) {
      throw new BulkLoadColumnsError(
        table,
        `the table has no column ${JSON.stringify(column)} (it has ${[...types.keys()].map((c) => JSON.stringify(c)).join(', ')}).`,
      );
    }
    if (info.isArray) {
      throw new BulkLoadColumnsError(
        table,
        `column ${JSON.stringify(column)} is an array (${info.type}): unnest() would flatten it. Load it with copyFrom().`,
      );
    }
    return `${info.type}[]`;
  });
  const arrays = columns.map(() => new Array<unknown>(list.length));
  for (let r = 0; r < list.length; r++) {
    const values = valuesOf(table, columns, list[r], r);
    for (let c = 0; c < values.length; c++) arrays[c][r] = values[c] ?? null;
  }
  const unnest = casts.map((cast, i) => `$${i + 1}::${cast}`).join(', ');
  const text = `INSERT INTO ${table} (${quoted}) SELECT * FROM unnest(${unnest})${conflictClause(table, columns, options.onConflict)}`;
  try {
    return (await run(text, arrays)).rowCount ?? 0;
  } catch (err) {
    columnTypeCache.get(pool)?.delete(table);
    throw err;
  }
}

function conflictClause(
  table: string,
  columns: readonly string[],
  onConflict: OnConflict | undefined,
): string {
  if (onConflict === undefined) return '';
  const { action, target = [], update } = onConflict;
  const targetSql =
    target.length === 0 ? '' : ` (${target.map((c) => quoteIdentifier(c, 'column')).join(', ')})`;
  if (action === 'nothing') return ` ON CONFLICT${targetSql} DO NOTHING`;
  if (action !== 'update') {
    throw new BulkLoadColumnsError(
      table,
      `onConflict.action must be 'nothing' or 'update', received ${JSON.stringify(action)}.`,
    );
  }
  if (target.length === 0) {
    throw new BulkLoadColumnsError(
      table,
      "onConflict.action 'update' needs onConflict.target: the columns of the unique constraint to match on.",
    );
  }
  const set = update ?? columns.filter((c) => !target.includes(c));
  if (set.length === 0) {
    throw new BulkLoadColumnsError(
      table,
      "onConflict 'update' has no column to update: every inserted column is in the target. Use action 'nothing'.",
    );
  }
  const assignments = set
    .map((c) => {
      const q = quoteIdentifier(c, 'column');
      return `${q} = EXCLUDED.${q}`;
    })
    .join(', ');
  return ` ON CONFLICT${targetSql} DO UPDATE SET ${assignments}`;
}
