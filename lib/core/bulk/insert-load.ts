// copyFrom() for a pooled tenant's manager. PostgreSQL refuses COPY FROM on a table with
// row-level security, so the rows go in as multi-row INSERTs through the manager (each one set
// to the tenant's scope), all in one transaction or savepoint: the same all or nothing.
import type pg from 'pg';
import type { TransactionOptions } from '../transaction/transaction-options.js';
import type { BulkRowSource } from './bulk-load.js';
import { columnList, valuesOf, wrapUnknownColumn } from './bulk-load.js';

/** What the load needs of the manager (a `SchemaDb`). */
export interface InsertLoadTarget {
  query(text: string, params?: readonly unknown[]): Promise<pg.QueryResult>;
  transaction<T>(
    fn: (tx: InsertLoadTarget) => Promise<T>,
    options?: TransactionOptions,
  ): Promise<T>;
}

/** PostgreSQL's limit of bind parameters per statement. */
const MAX_PARAMETERS = 65_535;
/** Rows per INSERT at most: a longer statement costs more to parse than it saves in round trips. */
const MAX_ROWS_PER_INSERT = 1_000;

/**
 * Loads `rows` into `table` (already qualified) with `INSERT … VALUES (…), (…)` statements of up
 * to 1,000 rows each, in a savepoint of the running transaction or in a transaction of its own.
 * Values are bind parameters, converted as `copyFrom()` converts them (pg's own conversion).
 * Rows are validated like `copyFrom()`'s, with the same errors. Returns the rows inserted.
 *
 * @throws BulkLoadColumnsError, BulkLoadRowError, or the server's error.
 */
export async function insertLoad(
  db: InsertLoadTarget,
  table: string,
  columns: readonly string[],
  rows: BulkRowSource,
): Promise<number> {
  const quoted = columnList(table, columns);
  if (rows === null || typeof rows !== 'object') {
    throw new TypeError('copyFrom rows must be an array, an iterable or a readable stream.');
  }
  if (Array.isArray(rows) && rows.length === 0) return 0;
  const perInsert = Math.max(
    1,
    Math.min(MAX_ROWS_PER_INSERT, Math.floor(MAX_PARAMETERS / columns.length)),
  );
  try {
    // 'nested': a savepoint inside a running transaction, a transaction of its own outside one.
    return await db.transaction(
      async (tx) => {
        let inserted = 0;
        let values: unknown[] = [];
        let pending = 0;
        let index = 0;
        const flush = async () => {
          const result = await tx.query(insertText(table, quoted, columns.length, pending), values);
          inserted += result.rowCount ?? 0;
          values = [];
          pending = 0;
        };
        const add = (row: unknown) => {
          for (const value of valuesOf(table, columns, row, index++)) values.push(value ?? null);
          return ++pending === perInsert;
        };
        if (Symbol.iterator in rows) {
          for (const row of rows) if (add(row)) await flush();
        } else {
          for await (const row of rows) if (add(row)) await flush();
        }
        if (pending > 0) await flush();
        return inserted;
      },
      { propagation: 'nested' },
    );
  } catch (err) {
    throw wrapUnknownColumn(table, err);
  }
}

/** `INSERT INTO table (columns) VALUES ($1, $2), ($3, $4), …` for `rows` rows. */
function insertText(table: string, quoted: string, width: number, rows: number): string {
  const tuples = new Array<string>(rows);
  for (let r = 0; r < rows; r++) {
    const params = new Array<string>(width);
    for (let c = 0; c < width; c++) params[c] = `$${r * width + c + 1}`;
    tuples[r] = `(${params.join(', ')})`;
  }
  return `INSERT INTO ${table} (${quoted}) VALUES ${tuples.join(', ')}`;
}
