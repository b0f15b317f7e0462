import { PgTenancyError } from '../errors.js';

/** The migrations folder holds files that cannot be ordered: bad names, duplicates or gaps. */
export class MigrationFilesError extends PgTenancyError {}

/**
 * An applied migration's file has changed since it ran. Applied migrations are history: put the
 * change in a new file, or restore the file's text.
 */
export class MigrationChecksumError extends PgTenancyError {
  constructor(
    /** The schema whose history disagrees with the folder. */
    readonly schema: string,
    /** The edited file's name. */
    readonly file: string,
  ) {
    super(
      `Migration ${file} in schema "${schema}" was changed after it was applied (checksum mismatch). ` +
        'Restore the original text and put the change in a new migration file.',
    );
  }
}

/** A migration failed. Its transaction was rolled back and later files were not attempted. */
export class MigrationFailedError extends PgTenancyError {
  constructor(
    /** The schema being migrated. */
    readonly schema: string,
    /** The file that failed. */
    readonly file: string,
    /** 1-based line in the file where PostgreSQL reported the error, when it gave a position. */
    readonly line: number | undefined,
    cause: unknown,
  ) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(
      `Migration ${file}${line ? ` (line ${line})` : ''} failed in schema "${schema}": ${reason}. ` +
        'It was rolled back and later migrations were not applied; fix the file and run again.',
      { cause },
    );
  }
}
