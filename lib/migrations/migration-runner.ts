import { Logger, type LoggerService } from '@nestjs/common';
import pg from 'pg';
import { assertIdentifier, quoteIdentifier } from '../core/identifiers.js';
import { SqlTemplate, TemplateCache } from '../core/sql-template.js';
import { toAcquireError } from '../pool/connection-errors.js';
import { loadMigrationFiles, type MigrationFile } from './migration-files.js';
import { MigrationChecksumError, MigrationFailedError } from './migration.errors.js';

/** Name of the history table created in every migrated schema. */
export const MIGRATIONS_TABLE = 'schema_migrations';

// Advisory lock namespace ("pgtn"); the second key is hashtext(schema), one lock per schema.
const LOCK_NAMESPACE = 0x7067746e;

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
}

/** What one `migrate()` call did. */
export interface MigrationResult {
  /** The schema migrated. */
  readonly schema: string;
  /** Files applied by this call, in order; empty when the schema was up to date. */
  readonly applied: {
    /** The file name. */
    readonly name: string;
    /** How long it took to run. */
    readonly durationMs: number;
  }[];
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
  // One parse per file however many schemas (tenants) it is applied to.
  readonly #templates = new TemplateCache();

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
    const template = new SqlTemplate(schema, this.#templates);
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
  async migrate(schema: string, source: MigrationSource): Promise<MigrationResult> {
    return this.#withClient((client) => this.#migrateOn(client, schema, source));
  }

  /**
   * A connection kept for migrating many schemas one after another (one worker of a fleet
   * migration), instead of one connection per schema. It connects on first use and again after
   * any failure; `close()` it when done.
   */
  session(): MigrationSession {
    let client: pg.Client | undefined;
    return {
      migrate: async (schema, source) => {
        client ??= await this.#connect();
        try {
          return await this.#migrateOn(client, schema, source);
        } catch (err) {
          await client.end().catch(() => undefined);
          client = undefined;
          throw err;
        }
      },
      close: async () => {
        await client?.end().catch(() => undefined);
        client = undefined;
      },
    };
  }

  async #migrateOn(
    client: pg.Client,
    schema: string,
    source: MigrationSource,
  ): Promise<MigrationResult> {
    assertIdentifier(schema, 'schema');
    const files = await filesOf(source);
    const template = new SqlTemplate(schema, this.#templates);
    await this.#locked(client, schema, async () => {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdentifier(schema)}`);
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${historyTable(schema)} (
           version integer PRIMARY KEY,
           name text NOT NULL,
           checksum text NOT NULL,
           applied_at timestamptz NOT NULL DEFAULT now(),
           duration_ms integer NOT NULL
         )`,
      );
    });
    const status = await this.#status(client, schema, files);
    if (status.changed.length > 0) throw new MigrationChecksumError(schema, status.changed[0]);
    const applied: MigrationResult['applied'] = [];
    for (const file of status.pending) {
      const durationMs = await this.#apply(client, schema, template, file);
      if (durationMs === undefined) continue; // another instance applied it meanwhile
      applied.push({ name: file.name, durationMs });
      this.#logger.log(`Applied ${schema}/${file.name} in ${durationMs} ms`);
    }
    return { schema, applied };
  }

  /**
   * Runs `fn` in a transaction holding the schema's advisory lock. The lock is
   * transaction-scoped, so it is released with the transaction even through a transaction-mode
   * pooler (where a session lock and its unlock could land on different server connections).
   */
  async #locked<T>(client: pg.Client, schema: string, fn: () => Promise<T>): Promise<T> {
    await client.query('BEGIN');
    try {
      await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [
        LOCK_NAMESPACE,
        schema,
      ]);
      const result = await fn();
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
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
  ): Promise<number | undefined> {
    const sql = template.expand(file.sql);
    const record = `INSERT INTO ${historyTable(schema)} (version, name, checksum, duration_ms) VALUES ($1, $2, $3, $4)`;
    const alreadyApplied = async () => {
      const { rows } = await client.query<{ checksum: string }>(
        `SELECT checksum FROM ${historyTable(schema)} WHERE version = $1`,
        [file.version],
      );
      if (rows[0] && rows[0].checksum !== file.checksum)
        throw new MigrationChecksumError(schema, file.name);
      return rows.length > 0;
    };
    let started = 0;
    /** Runs the file and records it, unless another migrator got there first. */
    const applyOnce = async (): Promise<number | undefined> => {
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
      await client.query('SELECT pg_advisory_lock($1, hashtext($2))', [LOCK_NAMESPACE, schema]);
      try {
        return await applyOnce();
      } finally {
        // If the connection broke, ending it frees the lock anyway; keep the original error.
        await client
          .query('SELECT pg_advisory_unlock($1, hashtext($2))', [LOCK_NAMESPACE, schema])
          .catch(() => undefined);
      }
    } catch (err) {
      if (err instanceof MigrationChecksumError) throw err;
      throw new MigrationFailedError(
        schema,
        file.name,
        started ? lineOf(sql, err) : undefined,
        err,
      );
    }
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
    return {
      schema,
      applied,
      pending: files.filter((f) => !byVersion.has(f.version)),
      changed: files
        .filter((f) => {
          const row = byVersion.get(f.version);
          return row !== undefined && row.checksum !== f.checksum;
        })
        .map((f) => f.name),
    };
  }

  async #connect(): Promise<pg.Client> {
    const client = new pg.Client(this.#config);
    // A connection error while idle between statements must not crash the process; the next
    // query on the client fails and reports it.
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (err) {
      throw toAcquireError(err, this.#config);
    }
    return client;
  }

  async #withClient<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = await this.#connect();
    try {
      return await fn(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

/** One reusable migration connection; see {@link MigrationRunner.session}. */
export interface MigrationSession {
  /** As {@link MigrationRunner.migrate}, on the session's connection. */
  migrate(schema: string, source: MigrationSource): Promise<MigrationResult>;
  /** Closes the connection, if one is open; safe to call more than once. */
  close(): Promise<void>;
}

/** A migrations folder, or its files already loaded (to read a folder once for many schemas). */
export type MigrationSource = string | readonly MigrationFile[];

function filesOf(source: MigrationSource): Promise<readonly MigrationFile[]> {
  return typeof source === 'string' ? loadMigrationFiles(source) : Promise.resolve(source);
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
