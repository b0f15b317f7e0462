import { PgTenancyError } from '../shared/errors.js';

/** The migrations folder holds files that cannot be applied safely: bad names, duplicates, gaps. */
export class MigrationFilesError extends PgTenancyError {}

/**
 * A transactional migration file controls the transaction itself (`BEGIN`, `COMMIT`, `ROLLBACK`,
 * `SAVEPOINT`, …) at its top level. Each file already runs in one transaction together with its
 * history row; its own `COMMIT` would make part of it permanent without a history row (and a
 * failure after it unrecoverable), and its own `ROLLBACK` would record it as applied with nothing
 * applied. Found when the folder is read, before anything runs.
 */
export class MigrationTransactionControlError extends MigrationFilesError {
  constructor(
    /** The offending file's name. */
    readonly file: string,
    /** 1-based line of the statement in the file. */
    readonly line: number,
    /** The statement's keywords, e.g. `COMMIT` or `START TRANSACTION`. */
    readonly statement: string,
    folder: string,
  ) {
    super(
      `Migration ${file} (line ${line}) runs ${statement} at its top level, in ${folder}. ` +
        'Each migration file runs in one transaction with its history row, so it must not begin, commit or roll back itself: ' +
        'remove the statement, split the work into several files, or (for statements that cannot run in a transaction) ' +
        'make "-- migrate:no-transaction" the first line.',
    );
  }
}

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

/**
 * Applied migrations of a schema have no file any more (deleted, or the folder is an older
 * checkout), and `missingMigrations: 'fail'` is set. The history, not the folder, says what the
 * schema holds: restore the files, or deploy the code that has them.
 */
export class MigrationFilesMissingError extends PgTenancyError {
  constructor(
    /** The schema whose history names the missing files. */
    readonly schema: string,
    /** File names recorded in the schema's history that the folder no longer has. */
    readonly files: readonly string[],
  ) {
    super(
      `Schema "${schema}" has applied migrations whose files are missing from the folder: ${files.join(', ')}. ` +
        'Restore the files (applied migrations are history), or check that this is the right folder and code version.',
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

/** The backend holding a schema's migration lock, as `pg_stat_activity` shows it. */
export interface MigrationLockHolder {
  /** The holder's backend process id, as `pg_terminate_backend()` takes it. */
  readonly pid: number;
  /** The holder's `application_name` (empty when it set none). */
  readonly applicationName: string;
  /** When the holder's current transaction (or, outside one, its connection) began. */
  readonly since: Date;
  /** `active`, `idle in transaction`, … */
  readonly state: string | null;
}

/**
 * Another connection held the schema's migration lock for longer than `migrationLockTimeoutMs`:
 * another instance is migrating the schema, or is stuck while holding the lock. Nothing was
 * applied. The holder is named so an operator can look at it, and end it if it is stuck.
 */
export class MigrationLockTimeoutError extends PgTenancyError {
  constructor(
    /** The schema whose lock was awaited. */
    readonly schema: string,
    /** How long it waited, in milliseconds (the configured lock timeout). */
    readonly timeoutMs: number,
    /** `undefined` when the holder let go just before it could be looked up. */
    readonly holder: MigrationLockHolder | undefined,
    options?: { cause?: unknown },
  ) {
    const who = holder
      ? `held by pid ${holder.pid} (application_name ${JSON.stringify(holder.applicationName)}, ${holder.state ?? 'state unknown'}, since ${holder.since.toISOString()})`
      : 'held by another connection';
    super(
      `Timed out after ${timeoutMs} ms waiting for the migration lock of schema "${schema}", ${who}. ` +
        'Another instance is migrating this schema, or is stuck: wait for it and retry' +
        (holder
          ? `, or if it is stuck end it with SELECT pg_terminate_backend(${holder.pid})`
          : '') +
        ', or raise migrationLockTimeoutMs.',
      options,
    );
  }
}
/**
 * `migrate(…, { createSchema: false })` on a schema that does not exist: nothing was created.
 * Create the schema first (for a tenant: `TenantService.create`, or `repair` a tenant whose
 * registry row has no schema).
 */
export class MigrationSchemaMissingError extends PgTenancyError {
  constructor(
    /** The schema that does not exist. */
    readonly schema: string,
  ) {
    super(
      `Schema "${schema}" does not exist, and migrations do not create it here: create the schema first.`,
    );
  }
}
