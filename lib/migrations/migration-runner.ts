import { Logger, type LoggerService } from '@nestjs/common';
import type pg from 'pg';
import { assertIdentifier, quoteIdentifier } from '../shared/identifiers.js';
import { SqlTemplate, SqlTemplateCache } from '../core/sql/sql-template.js';
import { InvalidOptionsError } from '../shared/errors.js';
import { withoutTimeouts } from '../connection/pool-options.js';
import {
  inTransaction,
  openSession,
  type Session,
  type SessionTracker,
} from '../connection/sessions.js';
import {
  matchesChecksum,
  readMigrationSource,
  type MigrationFile,
  type MigrationSource,
} from './migration-files.js';
import {
  historyDdl,
  readMigrationStatus,
  recordApplied,
  recordedChecksum,
} from './migration-history.js';
import {
  acquireMigrationLock,
  DEFAULT_MIGRATION_LOCK_TIMEOUT_MS,
  inLockedTransaction,
  releaseMigrationLock,
} from './migration-lock.js';
import {
  MigrationChecksumError,
  MigrationFailedError,
  MigrationFilesMissingError,
  MigrationLockTimeoutError,
  MigrationSchemaMissingError,
} from './migration.errors.js';
import type {
  MigrateOptions,
  MigrationConnection,
  MigrationResult,
  MigrationRunnerOptions,
  MigrationStatus,
  PlannedMigration,
} from './migration-types.js';

/**
 * Applies `NNN_description.sql` files to a schema, each in its own transaction together with its
 * history row, under a per-schema advisory lock so that any number of instances starting at once
 * apply each file exactly once.
 *
 * Migrations run on a dedicated connection opened with the pool's settings (not a pooled one), so
 * their relaxed timeout and the connection-scoped lock never leak into the pool.
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
    const timeout = options.statementTimeoutMs ?? 0;
    this.#config = {
      ...withoutTimeouts(connection),
      ...(timeout > 0 ? { statement_timeout: timeout } : {}),
    };
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
    const files = await readMigrationSource(source);
    return this.#withClient((client) => readMigrationStatus(client, schema, files));
  }

  /**
   * The SQL that `migrate()` would run, expanded, without running it. Fails like `migrate()` would
   * on a checksum mismatch.
   */
  async plan(schema: string, source: MigrationSource): Promise<PlannedMigration[]> {
    const status = await this.status(schema, source);
    if (status.changed.length > 0) throw new MigrationChecksumError(schema, status.changed[0]);
    const sqlTemplate = new SqlTemplate(schema, this.#sqlTemplates);
    return status.pending.map((file) => ({
      name: file.name,
      transactional: file.transactional,
      sql: sqlTemplate.expand(file.sql),
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
    const sqlTemplate = new SqlTemplate(schema, this.#sqlTemplates);
    const applied: MigrationResult['applied'] = [];
    for (const file of files) {
      const sql = sqlTemplate.expand(file.sql);
      const started = performance.now();
      try {
        await client.query(sql);
      } catch (err) {
        throw new MigrationFailedError(schema, file.name, lineOf(sql, err), err);
      }
      const durationMs = Math.round(performance.now() - started);
      await recordApplied(client, schema, file, durationMs);
      applied.push({ name: file.name, durationMs });
    }
    return { schema, applied, missing: [] };
  }

  /**
   * A connection kept for migrating many schemas one after another (one worker of a fleet
   * migration), instead of one connection per schema. It connects on first use and again after
   * any failure that broke it; `close()` it when done.
   */
  connection(): MigrationConnection {
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

  /** @deprecated Use {@link MigrationRunner.connection}; removed in 0.3. */
  session(): MigrationConnection {
    return this.connection();
  }

  async #migrateOn(
    client: pg.Client,
    schema: string,
    source: MigrationSource,
    options: MigrateOptions = {},
  ): Promise<MigrationResult> {
    assertIdentifier(schema, 'schema');
    const files = await readMigrationSource(source);
    const sqlTemplate = new SqlTemplate(schema, this.#sqlTemplates);
    await inLockedTransaction(client, schema, this.#lockTimeoutMs, async () => {
      await options.guard?.(client);
      if (options.createSchema === false) {
        const found = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
        if (found.rowCount === 0) throw new MigrationSchemaMissingError(schema);
      } else {
        await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdentifier(schema)}`);
      }
      await client.query(historyDdl(schema));
    });
    const status = await readMigrationStatus(client, schema, files);
    if (status.changed.length > 0) throw new MigrationChecksumError(schema, status.changed[0]);
    if (this.#failOnMissing && status.missing.length > 0) {
      throw new MigrationFilesMissingError(schema, status.missing);
    }
    const applied: MigrationResult['applied'] = [];
    for (const file of status.pending) {
      const durationMs = await this.#apply(client, schema, sqlTemplate, file, options);
      if (durationMs === undefined) continue; // another instance applied it meanwhile
      applied.push({ name: file.name, durationMs });
      this.#logger.log(`Applied ${schema}/${file.name} in ${durationMs} ms`);
    }
    return { schema, applied, missing: status.missing };
  }

  /**
   * Applies one file under the schema's lock, after checking (under the lock) that no other
   * instance applied it meanwhile: exactly once, however many migrators run. Returns the
   * duration, or `undefined` when the file was already applied.
   */
  async #apply(
    client: pg.Client,
    schema: string,
    sqlTemplate: SqlTemplate,
    file: MigrationFile,
    { guard, afterFile, beforeFile }: MigrateOptions,
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
    const sql = sqlTemplate.expand(file.sql);
    const alreadyApplied = async () => {
      const checksum = await recordedChecksum(client, schema, file);
      if (checksum !== undefined && !matchesChecksum(file, checksum))
        throw new MigrationChecksumError(schema, file.name);
      return checksum !== undefined;
    };
    let started = 0;
    /** Runs the file and records it, unless another migrator got there first. */
    const applyOnce = async (): Promise<number | undefined> => {
      await guarded();
      if (await alreadyApplied()) return undefined;
      started = performance.now();
      if (beforeFile && file.transactional) await beforeFile(client, file);
      else if (beforeFile) await inTransaction(client, () => beforeFile(client, file));
      // Sent as one simple query (no parameters): a multi-statement file runs as written, and
      // a single statement outside a transaction (CREATE INDEX CONCURRENTLY) runs outside any
      // transaction block.
      await client.query(sql);
      if (afterFile && file.transactional) await afterFile(client, file);
      else if (afterFile) await inTransaction(client, () => afterFile(client, file));
      const durationMs = Math.round(performance.now() - started);
      await recordApplied(client, schema, file, durationMs);
      return durationMs;
    };
    try {
      // The file, its history row and the lock share one transaction.
      if (file.transactional) {
        return await inLockedTransaction(client, schema, this.#lockTimeoutMs, applyOnce);
      }
      // Outside a transaction (CREATE INDEX CONCURRENTLY) only a connection-scoped lock can
      // serialise migrators: this needs a real server connection (directConnection when a
      // pooler is in front).
      await acquireMigrationLock(client, schema, 'connection', this.#lockTimeoutMs);
      try {
        return await applyOnce();
      } finally {
        await releaseMigrationLock(client, schema);
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

/** 1-based line of PostgreSQL's error position in `sql` (placeholders never span lines). */
function lineOf(sql: string, err: unknown): number | undefined {
  const position = Number((err as { position?: string }).position);
  if (!Number.isInteger(position) || position < 1) return undefined;
  let line = 1;
  for (let i = 0; i < position - 1 && i < sql.length; i++) if (sql[i] === '\n') line++;
  return line;
}
