import { Logger, type LoggerService } from '@nestjs/common';
import pg from 'pg';
import { assertIdentifier, quoteIdentifier } from '../shared/identifiers.js';
import { SqlTemplate, SqlTemplateCache } from '../core/sql/sql-template.js';
import { InvalidOptionsError, PgTenancyError } from '../shared/errors.js';
import {
  inTransaction,
  openSession,
  type Session,
  type SessionTracker,
} from '../connection/sessions.js';
import { loadMigrationFiles, matchesChecksum, type MigrationFile } from './migration-files.js';
import {
  MigrationChecksumError,
  MigrationFailedError,
  MigrationFilesMissingError,
  MigrationLockTimeoutError,
  type MigrationLockHolder,
} from './migration.errors.js';

/** Name of the history table created in every migrated schema. */
export const MIGRATIONS_TABLE = 'schema_migrations';

// Advisory lock namespace ("pgtn"); the second key is hashtext(schema), one lock per schema.
const LOCK_NAMESPACE = 0x7067746e;

/** Default longest wait for a schema's migration lock: 5 minutes. */
export const DEFAULT_MIGRATION_LOCK_TIMEOUT_MS = 300_000;
const LOCK_NOT_AVAILABLE = '55P03';

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

/**
 * Applies `NNN_description.sql` files to a schema, each in its own transaction together with its
 * history row, under a per-schema advisory lock so that any number of instances starting at once
 * apply each file exactly once.
 *
 * Migrations run on a dedicated connection opened with the pool's settings (not a pooled one), so
 * their relaxed timeout and the session lock never leak into the pool.
 */
export class MigrationRunner {
  readonly #config: pg.ClientConfig;
  readonly #logger: LoggerService;
  readonly #failOnMissing: boolean;
  readonly #lockTimeoutMs: number;
  readonly #tracker: SessionTracker | undefined;
  // One parse per file however many schemas (tenants) it is applied to.
  readonly #sqlTemplates = new SqlTemplateCache();

  /** @param connection the pool's options (`pool.options`) or any `pg.ClientConfig`. */
  constructor(connection: pg.ClientConfig, options: MigrationRunnerOptions = {}) {
    const {
      statement_timeout: _statementTimeout,
      lock_timeout: _lockTimeout,
      ...rest
    } = connection as pg.ClientConfig & { lock_timeout?: number };
    const timeout = options.statementTimeoutMs ?? 0;
    this.#config = { ...rest, ...(timeout > 0 ? { statement_timeout: timeout } : {}) };
    this.#logger = options.logger ?? new Logger('Migrations');
    this.#failOnMissing = options.failOnMissingFiles ?? false;
    this.#lockTimeoutMs = options.lockTimeoutMs ?? DEFAULT_MIGRATION_LOCK_TIMEOUT_MS;
    if (!Number.isInteger(this.#lockTimeoutMs) || this.#lockTimeoutMs < 0) {
      throw new InvalidOptionsError(
        `lockTimeoutMs must be a non-negative integer, received ${String(options.lockTimeoutMs)}.`,
      );
    }
    this.#tracker = options.tracker;
  }

  /**
   * Applied, pending and changed migrations of `schema`. Creates nothing.
   * `source` is a migrations folder, or files already read with `loadMigrationFiles()`.
   */
  async status(schema: string, source: MigrationSource): Promise<MigrationStatus> {
    assertIdentifier(schema, 'schema');
    const files = await filesOf(source);
    return this.#withClient((client) => this.#status(client, schema, files));
  }

  /**
   * The SQL that `migrate()` would run, expanded, without running it. Fails like `migrate()` would
   * on a checksum mismatch.
   */
  async plan(schema: string, source: MigrationSource): Promise<PlannedMigration[]> {
    const status = await this.status(schema, source);
    if (status.changed.length > 0) throw new MigrationChecksumError(schema, status.changed[0]);
    const template = new SqlTemplate(schema, this.#sqlTemplates);
    return status.pending.map((file) => ({
      name: file.name,
      transactional: file.transactional,
      sql: template.expand(file.sql),
    }));
  }

  /**
   * Creates the schema and its history table if missing, then applies pending files in order.
   *
   * @throws MigrationChecksumError when an applied file was edited (nothing is applied).
   * @throws MigrationFailedError naming schema, file and line; that file is rolled back and later
   *   files are not attempted. Files applied before it stay applied.
   */
  async migrate(
    schema: string,
    source: MigrationSource,
    options: MigrateOptions = {},
  ): Promise<MigrationResult> {
    return this.#withClient((client) => this.#migrateOn(client, schema, source, options));
  }

  /**
   * @internal Applies `files` to a schema created in the caller's open transaction on `client`
   * (nobody else can see it yet, so no lock is needed): history table, then each file and its
   * history row. Used by tenant creation, which commits schema, files and registry row together.
   */
  async applyInTransaction(
    client: pg.ClientBase,
    schema: string,
    files: readonly MigrationFile[],
  ): Promise<MigrationResult> {
    assertIdentifier(schema, 'schema');
    await client.query(historyDdl(schema));
    const template = new SqlTemplate(schema, this.#sqlTemplates);
    const applied: MigrationResult['applied'] = [];
    for (const file of files) {
      const sql = template.expand(file.sql);
      const started = performance.now();
      try {
        await client.query(sql);
      } catch (err) {
        throw new MigrationFailedError(schema, file.name, lineOf(sql, err), err);
      }
      const durationMs = Math.round(performance.now() - started);
      await client.query(
        `INSERT INTO ${historyTable(schema)} (version, name, checksum, duration_ms) VALUES ($1, $2, $3, $4)`,
        [file.version, file.name, file.checksum, durationMs],
      );
      applied.push({ name: file.name, durationMs });
    }
    return { schema, applied, missing: [] };
  }

  /**
   * A connection kept for migrating many schemas one after another (one worker of a fleet
   * migration), instead of one connection per schema. It connects on first use and again after
   * any failure; `close()` it when done.
   */
  session(): MigrationSession {
    let session: Session | undefined;
    return {
      migrate: async (schema, source, options) => {
        session ??= await this.#connect();
        try {
          return await this.#migrateOn(session.client, schema, source, options);
        } catch (err) {
          // A guard's refusal or a SQL error leaves a healthy session; a broken one is replaced.
          if (session.brokenBy) {
            await session.close();
            session = undefined;
          }
          throw err;
        }
      },
      close: async () => {
        await session?.close();
        session = undefined;
      },
    };
  }

  async #migrateOn(
    client: pg.Client,
    schema: string,
    source: MigrationSource,
    options: MigrateOptions = {},
  ): Promise<MigrationResult> {
    assertIdentifier(schema, 'schema');
    const files = await filesOf(source);
    const template = new SqlTemplate(schema, this.#sqlTemplates);
    await this.#locked(client, schema, async () => {
      await options.guard?.(client);
      if (options.createSchema === false) {
        const found = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
        if (found.rowCount === 0) throw new MigrationSchemaMissingError(schema);
      } else {
        await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdentifier(schema)}`);
      }
      await client.query(historyDdl(schema));
    });
    const status = await this.#status(client, schema, files);
    if (status.changed.length > 0) throw new MigrationChecksumError(schema, status.changed[0]);
    if (this.#failOnMissing && status.missing.length > 0) {
      throw new MigrationFilesMissingError(schema, status.missing);
    }
    const applied: MigrationResult['applied'] = [];
    for (const file of status.pending) {
      const durationMs = await this.#apply(client, schema, template, file, options.guard);
      if (durationMs === undefined) continue; // another instance applied it meanwhile
      applied.push({ name: file.name, durationMs });
      this.#logger.log(`Applied ${schema}/${file.name} in ${durationMs} ms`);
    }
    return { schema, applied, missing: status.missing };
  }

  /**
   * Runs `fn` in a transaction holding the schema's advisory lock. The lock is
   * transaction-scoped, so it is released with the transaction even through a transaction-mode
   * pooler (where a session lock and its unlock could land on different server connections).
   */
  #locked<T>(client: pg.Client, schema: string, fn: () => Promise<T>): Promise<T> {
    return inTransaction(client, async () => {
      await this.#acquire(client, schema, 'SELECT pg_advisory_xact_lock($1, hashtext($2))', true);
      return fn();
    });
  }

  /**
   * Applies one file under the schema's lock, after checking (under the lock) that no other
   * instance applied it meanwhile: exactly once, however many migrators run. Returns the
   * duration, or `undefined` when the file was already applied.
   */
  async #apply(
    client: pg.Client,
    schema: string,
    template: SqlTemplate,
    file: MigrationFile,
    guard?: (client: pg.ClientBase) => Promise<void>,
  ): Promise<number | undefined> {
    let refused = false;
    const guarded = async () => {
      try {
        await guard?.(client);
      } catch (err) {
        refused = true;
        throw err;
      }
    };
    const sql = template.expand(file.sql);
    const record = `INSERT INTO ${historyTable(schema)} (version, name, checksum, duration_ms) VALUES ($1, $2, $3, $4)`;
    const alreadyApplied = async () => {
      const { rows } = await client.query<{ checksum: string }>(
        `SELECT checksum FROM ${historyTable(schema)} WHERE version = $1`,
        [file.version],
      );
      if (rows[0] && !matchesChecksum(file, rows[0].checksum))
        throw new MigrationChecksumError(schema, file.name);
      return rows.length > 0;
    };
    let started = 0;
    /** Runs the file and records it, unless another migrator got there first. */
    const applyOnce = async (): Promise<number | undefined> => {
      await guarded();
      if (await alreadyApplied()) return undefined;
      started = performance.now();
      // Sent as one simple query (no parameters): a multi-statement file runs as written, and
      // a single statement outside a transaction (CREATE INDEX CONCURRENTLY) runs outside any
      // transaction block.
      await client.query(sql);
      const durationMs = Math.round(performance.now() - started);
      await client.query(record, [file.version, file.name, file.checksum, durationMs]);
      return durationMs;
    };
    try {
      // The file, its history row and the lock share one transaction.
      if (file.transactional) return await this.#locked(client, schema, applyOnce);
      // Outside a transaction (CREATE INDEX CONCURRENTLY) only a session lock can serialise
      // migrators: this needs a real session (directConnection when a pooler is in front).
      await this.#acquire(client, schema, 'SELECT pg_advisory_lock($1, hashtext($2))', false);
      try {
        return await applyOnce();
      } finally {
        // If the connection broke, ending it frees the lock anyway; keep the original error.
        await client
          .query('SELECT pg_advisory_unlock($1, hashtext($2))', [LOCK_NAMESPACE, schema])
          .catch(() => undefined);
      }
    } catch (err) {
      if (
        err instanceof MigrationChecksumError ||
        err instanceof MigrationLockTimeoutError ||
        refused
      ) {
        throw err;
      }
      throw new MigrationFailedError(
        schema,
        file.name,
        started ? lineOf(sql, err) : undefined,
        err,
      );
    }
  }

  /**
   * Takes the schema's advisory lock, waiting at most `lockTimeoutMs` (PostgreSQL's
   * `lock_timeout`, which bounds advisory lock waits too). Only the wait is bounded: the limit is
   * lifted again before the migration's own statements run.
   */
  async #acquire(
    client: pg.Client,
    schema: string,
    lockSql: string,
    inTransaction: boolean,
  ): Promise<void> {
    const timeout = this.#lockTimeoutMs;
    if (timeout === 0) {
      await client.query(lockSql, [LOCK_NAMESPACE, schema]);
      return;
    }
    const scope = inTransaction ? 'SET LOCAL' : 'SET';
    await client.query(`${scope} lock_timeout = ${timeout}`);
    try {
      await client.query(lockSql, [LOCK_NAMESPACE, schema]);
    } catch (err) {
      if ((err as { code?: string }).code !== LOCK_NOT_AVAILABLE) throw err;
      // The transaction is aborted; look the holder up outside it.
      if (inTransaction) await client.query('ROLLBACK');
      else await client.query('RESET lock_timeout');
      const holder = await this.#lockHolder(client, schema).catch(() => undefined);
      throw new MigrationLockTimeoutError(schema, timeout, holder, { cause: err });
    }
    await client.query(inTransaction ? 'SET LOCAL lock_timeout TO DEFAULT' : 'RESET lock_timeout');
  }

  async #lockHolder(client: pg.Client, schema: string): Promise<MigrationLockHolder | undefined> {
    const { rows } = await client.query<{
      pid: number;
      application_name: string;
      since: Date;
      state: string | null;
    }>(
      `SELECT a.pid, a.application_name, coalesce(a.xact_start, a.backend_start) AS since, a.state
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
          AND l.classid = $1::bigint::oid
          AND l.objid = (hashtext($2)::bigint & 4294967295)::oid
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        LIMIT 1`,
      [LOCK_NAMESPACE, schema],
    );
    const row = rows[0];
    return row
      ? { pid: row.pid, applicationName: row.application_name, since: row.since, state: row.state }
      : undefined;
  }

  async #status(
    client: pg.Client,
    schema: string,
    files: readonly MigrationFile[],
  ): Promise<MigrationStatus> {
    const exists = await client.query<{ found: string | null }>(
      'SELECT to_regclass($1)::text AS found',
      [historyTable(schema)],
    );
    const rows =
      exists.rows[0]?.found == null
        ? []
        : (
            await client.query<{
              version: number;
              name: string;
              checksum: string;
              applied_at: Date;
              duration_ms: number;
            }>(
              `SELECT version, name, checksum, applied_at, duration_ms FROM ${historyTable(schema)} ORDER BY version`,
            )
          ).rows;
    const applied = rows.map((r) => ({
      version: r.version,
      name: r.name,
      checksum: r.checksum,
      appliedAt: r.applied_at,
      durationMs: r.duration_ms,
    }));
    const byVersion = new Map(applied.map((a) => [a.version, a]));
    const fileVersions = new Set(files.map((f) => f.version));
    return {
      schema,
      applied,
      pending: files.filter((f) => !byVersion.has(f.version)),
      changed: files
        .filter((f) => {
          const row = byVersion.get(f.version);
          return row !== undefined && !matchesChecksum(f, row.checksum);
        })
        .map((f) => f.name),
      missing: applied.filter((a) => !fileVersions.has(a.version)).map((a) => a.name),
    };
  }

  #connect(): Promise<Session> {
    return openSession(this.#config, { tracker: this.#tracker });
  }

  async #withClient<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const session = await this.#connect();
    try {
      return await fn(session.client);
    } finally {
      await session.close();
    }
  }
}

/** One reusable migration connection; see {@link MigrationRunner.session}. */
export interface MigrationSession {
  /**
   * Like {@link MigrationRunner.migrate}, on the session's connection (opened on first use, and
   * again after a failure that broke it).
   */
  migrate(
    schema: string,
    source: MigrationSource,
    options?: MigrateOptions,
  ): Promise<MigrationResult>;
  /** Ends the connection, if one is open. Safe to call more than once. */
  close(): Promise<void>;
}

/** A migrations folder, or its files already loaded (to read a folder once for many schemas). */
export type MigrationSource = string | readonly MigrationFile[];

function filesOf(source: MigrationSource): Promise<readonly MigrationFile[]> {
  return typeof source === 'string' ? loadMigrationFiles(source) : Promise.resolve(source);
}

function historyDdl(schema: string): string {
  return `CREATE TABLE IF NOT EXISTS ${historyTable(schema)} (
     version integer PRIMARY KEY,
     name text NOT NULL,
     checksum text NOT NULL,
     applied_at timestamptz NOT NULL DEFAULT now(),
     duration_ms integer NOT NULL
   )`;
}

function historyTable(schema: string): string {
  return `${quoteIdentifier(schema)}.${quoteIdentifier(MIGRATIONS_TABLE)}`;
}

/** 1-based line of PostgreSQL's error position in `sql` (placeholders never span lines). */
function lineOf(sql: string, err: unknown): number | undefined {
  const position = Number((err as { position?: string }).position);
  if (!Number.isInteger(position) || position < 1) return undefined;
  let line = 1;
  for (let i = 0; i < position - 1 && i < sql.length; i++) if (sql[i] === '\n') line++;
  return line;
}
