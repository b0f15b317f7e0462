import { PgTenancyError } from '../../shared/errors.js';

/**
 * The column list of a bulk load cannot be used: it is empty, names a column twice, or names a
 * column the table does not have (`insertMany()` checks against the catalog; `copyFrom()` wraps
 * the server's "column does not exist"). Thrown before any row is written.
 */
export class BulkLoadColumnsError extends PgTenancyError {
  constructor(
    /** The table, as qualified in SQL. */
    readonly table: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`Bulk load into ${table}: ${message}`, options);
  }
}

/**
 * A row of a bulk load does not have the shape of the column list: an array of another length,
 * an object missing a column or carrying one not in the list, or not a row at all. Nothing of
 * the load is written: the whole statement is refused (or, mid-stream, aborted and rolled back).
 * The message names the row by position and the columns, never its values.
 */
export class BulkLoadRowError extends PgTenancyError {
  constructor(
    /** The table, as qualified in SQL. */
    readonly table: string,
    /** Zero-based position of the row in the input. */
    readonly rowIndex: number,
    reason: string,
  ) {
    super(
      `Bulk load into ${table}: row ${rowIndex} ${reason}. ` +
        'Give every row as an array in column order or as an object with exactly the listed columns as keys; nothing was written.',
    );
  }
}
