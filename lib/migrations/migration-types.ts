// The public types of the migration runner: its options, what it reports, and where files come from.
import type { LoggerService } from '@nestjs/common';
import type pg from 'pg';
import type { SessionTracker } from '../connection/sessions.js';
import type { MigrationFile, MigrationSource } from './migration-files.js';

/** A row of a schema's history table. */
export interface AppliedMigration {
  /** The file's number: `3` for `003_add_index.sql`. */
  readonly version: number;
  /** The file name, e.g. `003_add_index.sql`. */
  readonly name: string;
  /** SHA-256 (hex) of the file's text when it was applied. */
  readonly checksum: string;
  /** When its transaction committed. */
  readonly appliedAt: Date;
  /** How long the file took to run. */
  readonly durationMs: number;
}

/** Where a schema stands against its migrations folder. */
export interface MigrationStatus {
  /** The schema checked. */
  readonly schema: string;
  /** Rows of its history table, oldest first. */
  readonly applied: AppliedMigration[];
  /** Files not applied yet, in the order they would run. */
  readonly pending: MigrationFile[];
  /** Names of applied files whose text has changed since (each one is a checksum error). */
  readonly changed: string[];
  /** Names of applied files that are no longer in the folder (deleted, or an older checkout). */
  readonly missing: string[];
}

/** What one `migrate()` call did. */
export interface MigrationResult {
  /** The schema migrated. */
  readonly schema: string;
  /** Files this call applied, in the order they ran; empty when the schema was up to date. */
  readonly applied: {
    /** The file name, e.g. `003_add_index.sql`. */
    readonly name: string;
    /** How long the file took to run, in milliseconds (its transaction included). */
    readonly durationMs: number;
  }[];
  /** Applied files no longer in the folder (see {@link MigrationStatus.missing}). */
  readonly missing: string[];
}

/** A pending file and the SQL that would run for it. */
export interface PlannedMigration {
  /** The file name. */
  readonly name: string;
  /** `false` when the file starts with `-- migrate:no-transaction`. */
  readonly transactional: boolean;
  /** The file's SQL with every placeholder expanded for the schema. */
  readonly sql: string;
}

/** Options of {@link MigrationRunner}. */
export interface MigrationRunnerOptions {
  /**
   * Server-side `statement_timeout` for migration statements; `0` means none, since index builds
   * and backfills legitimately run long. Also bounds the wait for another instance's lock.
   * Default: `0`.
   */
  statementTimeoutMs?: number;
  /** Receives one line per applied file. Default: Nest's `Logger('Migrations')`. */
  logger?: LoggerService;
  /**
   * Longest wait for the schema's migration lock (held by another migrator) before `migrate()`
   * fails with `MigrationLockTimeoutError`, which names the holder. `0` waits forever.
   * Default: `300_000` (5 minutes).
   */
  lockTimeoutMs?: number;
  /**
   * Throw `MigrationFilesMissingError` from `migrate()`, before applying anything, when applied
   * files are missing from the folder. Otherwise they are only reported in the result's
   * `missing`. Default: `false`.
   */
  failOnMissingFiles?: boolean;
  /**
   * The shutdown gate that counts migration connections, so the module's drain waits for them.
   * Set by the module for its own runners; not part of the stable API. Default: none.
   *
   * @internal
   */
  tracker?: SessionTracker;
}

/** Options of one {@link MigrationRunner.migrate} call. */
export interface MigrateOptions {
  /**
   * Create the schema when it is missing. Tenant schemas pass `false`: only creating a tenant
   * may create its schema, so a migration racing a drop cannot resurrect it. Default: `true`.
   */
  createSchema?: boolean;
  /**
   * Runs inside every transaction that holds the schema's lock, before anything else in it; a
   * rejection stops the migration and is rethrown as is. Tenants use it to re-read their
   * registry row under the lock. Default: none.
   */
  guard?: (client: pg.ClientBase) => Promise<void>;
  /**
   * Runs after each file, on its connection before its history row is written: in the file's
   * transaction, or in a transaction of its own after a no-transaction file. A rejection fails
   * the file (rolled back with it when it ran in one). The pooled tier adapts what each file
   * made for sharing here. Default: none.
   *
   * @internal
   */
  afterFile?: (client: pg.ClientBase, file: MigrationFile) => Promise<void>;
  /**
   * Runs before each file, in its transaction (or, before a no-transaction file, in a
   * transaction of its own). Default: none.
   *
   * @internal
   */
  beforeFile?: (client: pg.ClientBase, file: MigrationFile) => Promise<void>;
}

/**
 * A connection kept for migrating many schemas one after another (see
 * {@link MigrationRunner.connection}). It holds at most one session at a time: it connects on
 * first use and again after a failure that broke the connection.
 */
export interface MigrationConnection {
  /**
   * Like {@link MigrationRunner.migrate}, on this connection (opened on first use, and again
   * after a failure that broke it).
   */
  migrate(
    schema: string,
    source: MigrationSource,
    options?: MigrateOptions,
  ): Promise<MigrationResult>;
  /** Ends the connection, if one is open. Safe to call more than once. */
  close(): Promise<void>;
}

/** @deprecated Use MigrationConnection (a session is one connection; this one reconnects); removed in 0.3. */
export type MigrationSession = MigrationConnection;
