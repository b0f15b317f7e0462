import { createHash } from 'node:crypto';
import { Logger, type LoggerService } from '@nestjs/common';
import type pg from 'pg';
import { quoteIdentifier } from '../core/identifiers.js';
import type { SchemaDb } from '../core/schema-db.js';
import type { DrainController } from '../lifecycle/drain-controller.js';
import { loadMigrationFiles, type MigrationFile } from '../migrations/migration-files.js';
import { MigrationRunner, type MigrationSession } from '../migrations/migration-runner.js';
import type { ResolvedTenancyOptions } from './tenancy-options.js';
import type { TenantContext } from './tenant-context.js';
import type { TenantInfo, TenantRegistry } from './tenant-registry.js';
import {
  TenantAlreadyExistsError,
  TenantCreationError,
  TenantNotFoundError,
} from './tenant.errors.js';

/** Progress of `migrateAll()`, reported after each tenant. */
export interface TenantMigrationProgress {
  /** Tenants finished so far, this one included. */
  readonly done: number;
  /** Tenants in this run. */
  readonly total: number;
  /** The tenant just finished. */
  readonly tenantId: string;
  /** Whether files were applied, none were pending, or it failed (see the summary's `failed`). */
  readonly outcome: 'applied' | 'up-to-date' | 'failed';
}

/** Options of {@link TenantService.migrateAll}. */
export interface MigrateAllOptions {
  /** Tenants migrated at once. Default: `tenancy.migrationConcurrency`, capped at `pool.max`. */
  concurrency?: number;
  /** Called after each tenant. */
  onProgress?: (progress: TenantMigrationProgress) => void;
  /** Only these tenant ids. Default: every active or suspended tenant. */
  tenants?: readonly string[];
}

/** What `migrateAll()` did. */
export interface TenantMigrationSummary {
  /** Tenants that had pending files, with the files applied. */
  readonly applied: {
    /** The tenant. */
    readonly tenantId: string;
    /** File names applied, in order. */
    readonly files: string[];
  }[];
  /** Tenants already up to date (known from the registry, without touching their schema). */
  readonly skipped: number;
  /** Tenants whose migration failed; the others were still migrated. */
  readonly failed: {
    /** The tenant. */
    readonly tenantId: string;
    /** The error message (also recorded in the registry as `lastError`). */
    readonly error: string;
  }[];
  /** Wall-clock time of the whole run. */
  readonly durationMs: number;
}

/** One row of the fleet view (`migrationStatus()`, `migrate --tenants --status`). */
export interface TenantMigrationState {
  /** The tenant. */
  readonly tenantId: string;
  /** Its registry status. */
  readonly status: 'active' | 'suspended';
  /** Files applied as of the last migration run. */
  readonly version: number;
  /** Files in the tenant migrations folder not applied yet. */
  readonly pending: number;
  /** Applied files have been edited since (the next run fails with a checksum error). */
  readonly changed: boolean;
  /** When migrations last ran for it, or `null`. */
  readonly lastMigratedAt: Date | null;
  /** Why the last migration attempt failed, or `null`. */
  readonly lastError: string | null;
}

/** Options of {@link TenantService.forEach}. */
export interface ForEachOptions {
  /** Tenants visited at once. Default: `4`. */
  concurrency?: number;
}

interface RegistryRow {
  id: string;
  schema_name: string;
  status: 'active' | 'suspended';
  migrated_version: number;
  migrations_digest: string | null;
  last_migrated_at: Date | null;
  last_error: string | null;
}

/**
 * Tenant lifecycle and per-tenant work outside requests. Inject it (`TenantService`) when
 * `tenancy` is configured; the CLI uses the same class.
 *
 * @example
 * await tenants.create('acme', { metadata: { plan: 'pro' } });
 * await tenants.run('acme', () => projects.list());   // @InjectTenantDb() resolves to acme
 */
export class TenantService {
  readonly #pool: pg.Pool;
  readonly #options: ResolvedTenancyOptions;
  readonly #registry: TenantRegistry;
  readonly #context: TenantContext;
  readonly #runner: MigrationRunner;
  readonly #logger: LoggerService;
  readonly #drain: DrainController | undefined;

  /** @internal Created by `DatabaseModule` (or the CLI). */
  constructor(
    pool: pg.Pool,
    connection: pg.ClientConfig,
    options: ResolvedTenancyOptions,
    registry: TenantRegistry,
    context: TenantContext,
    logger: LoggerService = new Logger('Tenancy'),
    drain?: DrainController,
  ) {
    this.#drain = drain;
    this.#pool = pool;
    this.#options = options;
    this.#registry = registry;
    this.#context = context;
    this.#logger = logger;
    this.#runner = new MigrationRunner(connection, { logger: quietLogger(logger) });
  }

  /**
   * Creates a tenant: registry row, schema and every tenant migration — all or nothing. On any
   * failure the schema is dropped and the row deleted before the error is thrown. A schema that
   * already exists is never adopted or dropped: creation fails and leaves it as it is.
   *
   * @throws InvalidTenantIdError, TenantAlreadyExistsError, TenantCreationError
   */
  async create(
    id: string,
    options: { metadata?: Record<string, unknown> } = {},
  ): Promise<TenantInfo> {
    const schema = this.#registry.schemaFor(id);
    const inserted = await this.#pool.query(
      `INSERT INTO ${this.#registry.table} (id, schema_name, metadata) VALUES ($1, $2, $3)
       ON CONFLICT DO NOTHING`,
      [id, schema, JSON.stringify(options.metadata ?? {})],
    );
    if (inserted.rowCount === 0) throw new TenantAlreadyExistsError(id);
    // Only a schema this call created may be dropped when undoing it: a schema that already
    // exists (data from another system, an earlier setup) is refused and left untouched.
    let createdSchema = false;
    try {
      try {
        await this.#pool.query(`CREATE SCHEMA ${quoteIdentifier(schema)}`);
        createdSchema = true;
      } catch (err) {
        if ((err as { code?: string }).code === '42P06') {
          throw new Error(
            `schema "${schema}" already exists and was left untouched; drop or rename it, or choose another id`,
            { cause: err },
          );
        }
        throw err;
      }
      const files = await this.#files();
      if (files.length > 0) await this.#runner.migrate(schema, files);
      await this.#pool.query(
        `UPDATE ${this.#registry.table}
            SET status = 'active', migrated_version = $2, migrations_digest = $3, last_migrated_at = now()
          WHERE id = $1`,
        [id, files.length, digest(files, files.length)],
      );
      await this.#notify(id);
    } catch (err) {
      if (createdSchema) {
        await this.#pool
          .query(`DROP SCHEMA IF EXISTS ${quoteIdentifier(schema)} CASCADE`)
          .catch((cleanupErr: Error) => {
            this.#logger.error(
              `Could not drop schema ${schema} of failed tenant ${id}: ${cleanupErr.message}`,
            );
          });
      }
      await this.#pool
        .query(`DELETE FROM ${this.#registry.table} WHERE id = $1`, [id])
        .catch(() => undefined);
      throw new TenantCreationError(id, err);
    }
    const entry = await this.#registry.refresh(id);
    return entry!.info;
  }

  /** Drops a tenant: its schema with all data, and its registry row. @throws TenantNotFoundError */
  async drop(id: string): Promise<void> {
    const schema = this.#registry.schemaFor(id);
    const client = await this.#pool.connect();
    try {
      await client.query('BEGIN');
      const deleted = await client.query(`DELETE FROM ${this.#registry.table} WHERE id = $1`, [id]);
      if (deleted.rowCount === 0) throw new TenantNotFoundError(id);
      await client.query(`DROP SCHEMA IF EXISTS ${quoteIdentifier(schema)} CASCADE`);
      await client.query('SELECT pg_notify($1, $2)', [this.#registry.channel, id]);
      await client.query('COMMIT');
      client.release();
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release();
      throw err;
    }
    await this.#registry.refresh(id);
  }

  /** Suspends a tenant: its requests are answered 403 until `resume()`. */
  suspend(id: string): Promise<TenantInfo> {
    return this.#setStatus(id, 'suspended');
  }

  /** Lets a suspended tenant's requests through again. */
  resume(id: string): Promise<TenantInfo> {
    return this.#setStatus(id, 'active');
  }

  /** The tenant as the table records it now, or `null`. */
  async get(id: string): Promise<TenantInfo | null> {
    this.#registry.validate(id);
    const entry = await this.#registry.refresh(id);
    return entry?.info ?? null;
  }

  /** Every tenant (active and suspended), ordered by id, read from the table. */
  async list(): Promise<TenantInfo[]> {
    await this.#registry.reload();
    return this.#registry
      .entries()
      .map((e) => e.info)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * The manager of an active tenant, for work outside requests (jobs, queues).
   * @throws InvalidTenantIdError, TenantNotFoundError, TenantSuspendedError
   */
  async db(id: string): Promise<SchemaDb> {
    return (await this.#registry.require(id)).db;
  }

  /**
   * Runs `fn` with tenant `id` as the ambient tenant, so `@InjectTenantDb()` resolves to it.
   * During graceful shutdown a job already running finishes; a new one is refused with
   * `DatabaseShuttingDownError`.
   */
  async run<T>(id: string, fn: () => T | Promise<T>): Promise<T> {
    const entry = await this.#registry.require(id);
    return this.#admitted(() => this.#context.run({ tenantId: id, db: entry.db }, fn));
  }

  /**
   * Calls `fn` for every active tenant, at most `concurrency` at once, each inside that tenant's
   * context. Visits every tenant even when some fail, then rejects with an `AggregateError`.
   */
  async forEach(
    fn: (db: SchemaDb, tenant: TenantInfo) => Promise<void> | void,
    options: ForEachOptions = {},
  ): Promise<void> {
    const active = this.#registry.entries().filter((e) => e.info.status === 'active');
    const errors: Error[] = [];
    await this.#admitted(() =>
      mapLimit(active, options.concurrency ?? 4, async (entry) => {
        try {
          await this.#context.run({ tenantId: entry.info.id, db: entry.db }, () =>
            fn(entry.db, entry.info),
          );
        } catch (err) {
          errors.push(
            new Error(`Tenant ${entry.info.id}: ${(err as Error).message}`, { cause: err }),
          );
        }
      }),
    );
    if (errors.length > 0)
      throw new AggregateError(errors, `forEach failed for ${errors.length} tenant(s)`);
  }

  /**
   * Applies pending tenant migrations to every tenant (or `tenants`), `concurrency` at a time,
   * each schema under its own advisory lock. Tenants the registry records as up to date with
   * unchanged files are skipped without touching their schema, so a no-op run over thousands of
   * tenants costs one query. One tenant's failure does not stop the others; the summary lists it
   * and the registry keeps its error for the fleet view.
   */
  async migrateAll(options: MigrateAllOptions = {}): Promise<TenantMigrationSummary> {
    const started = performance.now();
    const files = await this.#files();
    const rows = await this.#rows(options.tenants);
    const current = digest(files, files.length);
    const stale = rows.filter(
      (r) => r.migrated_version !== files.length || r.migrations_digest !== current,
    );
    const skipped = rows.length - stale.length;
    const applied: { tenantId: string; files: string[] }[] = [];
    const failed: { tenantId: string; error: string }[] = [];
    let done = skipped;
    const concurrency = Math.max(
      1,
      Math.min(
        options.concurrency ?? this.#options.migrationConcurrency,
        this.#pool.options.max ?? 10,
      ),
    );
    const migrateOne = async (row: RegistryRow, session: MigrationSession) => {
      let outcome: TenantMigrationProgress['outcome'];
      try {
        const result = await session.migrate(row.schema_name, files);
        await this.#pool.query(
          `UPDATE ${this.#registry.table}
              SET migrated_version = $2, migrations_digest = $3, last_migrated_at = now(), last_error = NULL
            WHERE id = $1`,
          [row.id, files.length, current],
        );
        if (result.applied.length > 0) {
          applied.push({ tenantId: row.id, files: result.applied.map((a) => a.name) });
          outcome = 'applied';
        } else {
          outcome = 'up-to-date';
        }
      } catch (err) {
        const message = (err as Error).message;
        failed.push({ tenantId: row.id, error: message });
        outcome = 'failed';
        await this.#pool
          .query(`UPDATE ${this.#registry.table} SET last_error = $2 WHERE id = $1`, [
            row.id,
            message,
          ])
          .catch(() => undefined);
      }
      options.onProgress?.({ done: ++done, total: rows.length, tenantId: row.id, outcome });
    };
    // Each worker keeps one migration connection for all the tenants it takes: a new connection
    // per tenant would cost about as much as a small tenant's migrations.
    let next = 0;
    const worker = async () => {
      const session = this.#runner.session();
      try {
        while (next < stale.length) await migrateOne(stale[next++], session);
      } finally {
        await session.close();
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, stale.length) }, worker));
    return { applied, skipped, failed, durationMs: Math.round(performance.now() - started) };
  }

  /** The fleet view: per tenant, its version, pending count, edited files and last failure. One query. */
  async migrationStatus(tenants?: readonly string[]): Promise<TenantMigrationState[]> {
    const files = await this.#files();
    const rows = await this.#rows(tenants);
    return rows.map((row) => ({
      tenantId: row.id,
      status: row.status,
      version: row.migrated_version,
      pending: Math.max(0, files.length - row.migrated_version),
      changed:
        row.migrated_version > 0 &&
        row.migrated_version <= files.length &&
        row.migrations_digest !== digest(files, row.migrated_version),
      lastMigratedAt: row.last_migrated_at,
      lastError: row.last_error,
    }));
  }

  async #rows(tenants?: readonly string[]): Promise<RegistryRow[]> {
    tenants?.forEach((id) => this.#registry.validate(id));
    const { rows } = await this.#pool.query<RegistryRow>(
      `SELECT id, schema_name, status, migrated_version, migrations_digest, last_migrated_at, last_error
         FROM ${this.#registry.table}
        WHERE status <> 'provisioning' AND ($1::text[] IS NULL OR id = ANY($1))
        ORDER BY id`,
      [tenants ?? null],
    );
    const missing = tenants?.filter((id) => !rows.some((r) => r.id === id)) ?? [];
    if (missing.length > 0) throw new TenantNotFoundError(missing[0]);
    return rows;
  }

  async #setStatus(id: string, status: 'active' | 'suspended'): Promise<TenantInfo> {
    this.#registry.validate(id);
    const updated = await this.#pool.query(
      `UPDATE ${this.#registry.table} SET status = $2 WHERE id = $1 AND status <> 'provisioning'`,
      [id, status],
    );
    if (updated.rowCount === 0) throw new TenantNotFoundError(id);
    await this.#notify(id);
    const entry = await this.#registry.refresh(id);
    return entry!.info;
  }

  async #admitted<T>(fn: () => T | Promise<T>): Promise<T> {
    return this.#drain ? this.#drain.admit(async () => fn()) : fn();
  }

  #notify(id: string): Promise<unknown> {
    return this.#pool.query('SELECT pg_notify($1, $2)', [this.#registry.channel, id]);
  }

  #files(): Promise<readonly MigrationFile[]> {
    return this.#options.migrations
      ? loadMigrationFiles(this.#options.migrations)
      : Promise.resolve([]);
  }
}

/** SHA-256 over the checksums of the first `version` files: "these exact files were applied". */
function digest(files: readonly MigrationFile[], version: number): string {
  return createHash('sha256')
    .update(
      files
        .slice(0, version)
        .map((f) => f.checksum)
        .join(','),
    )
    .digest('hex');
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function mapLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Per-file lines for thousands of tenants drown the log: keep warnings and errors only. */
function quietLogger(logger: LoggerService): LoggerService {
  return {
    log: () => undefined,
    warn: (message: unknown) => {
      logger.warn(message);
    },
    error: (message: unknown) => {
      logger.error(message);
    },
  };
}
