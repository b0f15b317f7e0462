import type { LoggerService } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { assertIdentifier, quoteIdentifier } from '../core/identifiers.js';
import type { QueryEnvironment } from '../core/query-environment.js';
import { SchemaDb } from '../core/schema-db.js';
import type { ResolvedTenancyOptions } from './tenancy-options.js';
import {
  InvalidTenantIdError,
  TenantNotFoundError,
  TenantSuspendedError,
} from './tenant.errors.js';

/** A tenant as the registry records it. */
export interface TenantInfo {
  /** The tenant id, as resolved from requests. */
  readonly id: string;
  /** The tenant's schema: `schemaPrefix` + id. */
  readonly schema: string;
  /** `suspended` tenants are refused with 403 until resumed. */
  readonly status: 'active' | 'suspended';
  /** What was passed to `create()` (plan, owner, ...); the library never reads it. */
  readonly metadata: Record<string, unknown>;
  /** When the tenant was created. */
  readonly createdAt: Date;
  /** Number of tenant migration files applied, as of the last `migrateAll()`/`create()`. */
  readonly migratedVersion: number;
  /** When migrations last ran for it, or `null`. */
  readonly lastMigratedAt: Date | null;
  /** Why the last migration attempt failed, or `null`. */
  readonly lastError: string | null;
}

/** A known tenant and its pre-built manager. */
export interface TenantEntry {
  /** The registry's record. */
  readonly info: TenantInfo;
  /** The manager bound to the tenant's schema. */
  readonly db: SchemaDb;
}

interface TenantRow {
  id: string;
  schema_name: string;
  status: 'provisioning' | 'active' | 'suspended';
  metadata: Record<string, unknown>;
  created_at: Date;
  migrated_version: number;
  migrations_digest: string | null;
  last_migrated_at: Date | null;
  last_error: string | null;
}

// Advisory lock namespace shared with the migration runner ("pgtn").
const LOCK_NAMESPACE = 0x7067746e;
const NEGATIVE_CACHE_MAX = 10_000;
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5_000;
const PROBE_PREFIX = '__probe__';
const PROBE_TIMEOUT_MS = 2_000;

/**
 * The in-memory map of tenants, each with a pre-built `SchemaDb`, kept in step with the
 * `tenants` table. Loaded at start-up; changes made by any instance arrive by LISTEN/NOTIFY on a
 * dedicated connection, which reconnects (and reloads everything) after failures.
 *
 * While that listener is connected the map is authoritative, so an unknown id costs no query at
 * all: a flood of bogus ids never reaches the database. While it is down, a miss costs one
 * primary-key lookup and unknown ids are remembered for `negativeCacheMs`.
 */
export class TenantRegistry {
  readonly #env: QueryEnvironment;
  readonly #pool: pg.Pool;
  readonly #connection: pg.ClientConfig;
  readonly #options: ResolvedTenancyOptions;
  readonly #logger: LoggerService;
  readonly #entries = new Map<string, TenantEntry>();
  readonly #negative = new Map<string, number>();
  readonly #inflight = new Map<string, Promise<TenantEntry | null>>();
  #listener: pg.Client | undefined;
  #synced = false;
  #closed = false;
  #reconnectDelay = RECONNECT_MIN_MS;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #syncWaiters: Array<() => void> = [];
  #probe: { nonce: string; received: () => void } | undefined;
  #pollTimer: NodeJS.Timeout | undefined;

  /**
   * @param env the pool (and shutdown gate, query observer) the tenants' managers use.
   * @param connection connection settings with the password (not `pool.options`, where pg-pool
   *   hides it), used for the listener's own connection.
   */
  constructor(
    env: QueryEnvironment | pg.Pool,
    connection: pg.ClientConfig,
    options: ResolvedTenancyOptions,
    logger: LoggerService,
  ) {
    this.#env = env instanceof pg.Pool ? { pool: env } : env;
    this.#pool = this.#env.pool;
    this.#connection = connection;
    this.#options = options;
    this.#logger = logger;
  }

  /** `"registrySchema"."tenants"`. */
  get table(): string {
    return `${quoteIdentifier(this.#options.registrySchema)}.${quoteIdentifier('tenants')}`;
  }

  /** The NOTIFY channel for registry changes. */
  get channel(): string {
    return `pg_tenancy_${this.#options.registrySchema}`;
  }

  /** `true` while the change listener is connected and the map is complete. */
  get synced(): boolean {
    return this.#synced;
  }

  /** Number of tenants in memory. */
  get size(): number {
    return this.#entries.size;
  }

  /** @throws InvalidTenantIdError */
  validate(id: unknown): asserts id is string {
    if (typeof id !== 'string' || !this.#options.idPattern.test(id)) {
      throw new InvalidTenantIdError(this.#options.idPattern);
    }
  }

  /** The schema of tenant `id` (validated). @throws InvalidTenantIdError, InvalidIdentifierError */
  schemaFor(id: string): string {
    this.validate(id);
    const schema = `${this.#options.schemaPrefix}${id}`;
    assertIdentifier(schema, 'tenant schema');
    return schema;
  }

  /** Creates the registry schema and table if missing (safe when many instances start at once). */
  async ensureTable(): Promise<void> {
    const client = await this.#pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [
        LOCK_NAMESPACE,
        `registry:${this.#options.registrySchema}`,
      ]);
      await client.query(
        `CREATE SCHEMA IF NOT EXISTS ${quoteIdentifier(this.#options.registrySchema)}`,
      );
      await client.query(
        `CREATE TABLE IF NOT EXISTS ${this.table} (
           id text PRIMARY KEY,
           schema_name text NOT NULL UNIQUE,
           status text NOT NULL DEFAULT 'provisioning'
             CHECK (status IN ('provisioning', 'active', 'suspended')),
           metadata jsonb NOT NULL DEFAULT '{}',
           created_at timestamptz NOT NULL DEFAULT now(),
           migrated_version integer NOT NULL DEFAULT 0,
           migrations_digest text,
           last_migrated_at timestamptz,
           last_error text
         )`,
      );
      await client.query('COMMIT');
      client.release();
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release(err as Error);
      throw err;
    }
  }

  /** Ensures the table, starts the change listener and loads every tenant. */
  async start(): Promise<void> {
    this.#closed = false;
    await this.ensureTable();
    try {
      await this.#connectListener();
    } catch (err) {
      // Serve from the table with per-miss lookups until the listener is back.
      this.#logger.warn(
        `Tenant change listener could not connect (${(err as Error).message}); retrying in the background.`,
      );
      await this.reload();
      this.#scheduleReconnect();
    }
  }

  /** Stops the listener. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#synced = false;
    clearTimeout(this.#reconnectTimer);
    clearInterval(this.#pollTimer);
    this.#pollTimer = undefined;
    const listener = this.#listener;
    this.#listener = undefined;
    await listener?.end().catch(() => undefined);
  }

  /** Reloads every tenant from the table (after start-up or a listener reconnect). */
  async reload(): Promise<void> {
    const { rows } = await this.#pool.query<TenantRow>(
      `SELECT * FROM ${this.table} WHERE status <> 'provisioning'`,
    );
    const seen = new Set<string>();
    for (const row of rows) {
      seen.add(row.id);
      this.#upsert(row);
    }
    for (const id of this.#entries.keys()) if (!seen.has(id)) this.#entries.delete(id);
    this.#negative.clear();
  }

  /** Re-reads one tenant (after a change notification or a local change). */
  async refresh(id: string): Promise<TenantEntry | null> {
    const { rows } = await this.#pool.query<TenantRow>(
      `SELECT * FROM ${this.table} WHERE id = $1`,
      [id],
    );
    const row = rows[0];
    if (!row || row.status === 'provisioning') {
      this.#entries.delete(id);
      return null;
    }
    this.#negative.delete(id);
    return this.#upsert(row);
  }

  /** Every tenant in memory. */
  entries(): TenantEntry[] {
    return [...this.#entries.values()];
  }

  /**
   * The tenant `id`, or `null` if there is none. Validates first: a malformed id throws and
   * costs no query.
   */
  async find(id: string): Promise<TenantEntry | null> {
    this.validate(id);
    const entry = this.#entries.get(id);
    if (entry) return entry;
    if (this.#synced) return null;
    const negativeUntil = this.#negative.get(id);
    if (negativeUntil !== undefined && negativeUntil > Date.now()) return null;
    let pending = this.#inflight.get(id);
    if (!pending) {
      pending = this.refresh(id).finally(() => this.#inflight.delete(id));
      this.#inflight.set(id, pending);
    }
    const found = await pending;
    if (!found) this.#rememberUnknown(id);
    return found;
  }

  /**
   * The active tenant `id`. @throws InvalidTenantIdError, TenantNotFoundError, TenantSuspendedError
   */
  async require(id: string): Promise<TenantEntry> {
    const entry = await this.find(id);
    if (!entry) throw new TenantNotFoundError(id);
    if (entry.info.status === 'suspended') throw new TenantSuspendedError(id);
    return entry;
  }

  /** Resolves once the listener is connected and the map loaded. For tests and readiness checks. */
  whenSynced(): Promise<void> {
    if (this.#synced) return Promise.resolve();
    return new Promise((resolve) => this.#syncWaiters.push(resolve));
  }

  #upsert(row: TenantRow): TenantEntry {
    const existing = this.#entries.get(row.id);
    const db =
      existing && existing.db.schema === row.schema_name
        ? existing.db
        : SchemaDb.create(this.#env, row.schema_name);
    const entry: TenantEntry = {
      info: Object.freeze({
        id: row.id,
        schema: row.schema_name,
        status: row.status as 'active' | 'suspended',
        metadata: row.metadata,
        createdAt: row.created_at,
        migratedVersion: row.migrated_version,
        lastMigratedAt: row.last_migrated_at,
        lastError: row.last_error,
      }),
      db,
    };
    this.#entries.set(row.id, entry);
    return entry;
  }

  #rememberUnknown(id: string): void {
    if (this.#negative.size >= NEGATIVE_CACHE_MAX) {
      this.#negative.delete(this.#negative.keys().next().value as string);
    }
    this.#negative.set(id, Date.now() + this.#options.negativeCacheMs);
  }

  async #connectListener(): Promise<void> {
    const client = new pg.Client({
      ...this.#connection,
      application_name: 'nestjs-pg-tenancy:listener',
    });
    const lost = (err?: Error) => {
      if (this.#listener !== client) return;
      this.#listener = undefined;
      this.#synced = false;
      client.end().catch(() => undefined);
      if (this.#closed) return;
      this.#logger.warn(
        `Tenant change listener lost its connection${err ? ` (${err.message})` : ''}; reconnecting. Unknown tenants are looked up in the table meanwhile.`,
      );
      this.#scheduleReconnect();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    client.on('notification', (message) => {
      if (message.channel !== this.channel || !message.payload) return;
      if (message.payload.startsWith(PROBE_PREFIX)) {
        if (this.#probe?.nonce === message.payload) this.#probe.received();
        return;
      }
      this.refresh(message.payload).catch((err: Error) => {
        this.#logger.warn(`Could not refresh tenant ${message.payload}: ${err.message}`);
        // Missing a change is worse than a reload: resynchronise through a reconnect.
        lost(err);
      });
    });
    await client.connect();
    this.#listener = client;
    try {
      await client.query(`LISTEN ${quoteIdentifier(this.channel)}`);
      // Listen first, then load: a change committed in between is seen by one or the other.
      await this.reload();
    } catch (err) {
      lost(err as Error);
      throw err;
    }
    if (this.#closed) {
      await this.close();
      return;
    }
    if (!(await this.#notificationsArrive())) {
      // Typically PgBouncer in transaction mode: LISTEN ran on one server connection and
      // notifications go to a session nobody reads. Trusting the map would serve suspended
      // tenants forever, so poll the table instead.
      this.#listener = undefined;
      await client.end().catch(() => undefined);
      this.#logger.warn(
        `Tenant change notifications do not arrive on this connection (a transaction-mode pooler such as PgBouncer?). ` +
          `Falling back to reloading the registry every ${this.#options.pollIntervalMs} ms; set directConnection to a direct PostgreSQL connection for instant propagation.`,
      );
      this.#startPolling();
      return;
    }
    this.#synced = true;
    this.#reconnectDelay = RECONNECT_MIN_MS;
    for (const resolve of this.#syncWaiters.splice(0)) resolve();
  }

  /** Sends a NOTIFY through the pool, as another instance would, and waits for it to arrive. */
  async #notificationsArrive(): Promise<boolean> {
    const nonce = `${PROBE_PREFIX}${randomUUID()}`;
    let timer: NodeJS.Timeout | undefined;
    const arrived = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), PROBE_TIMEOUT_MS);
      this.#probe = { nonce, received: () => resolve(true) };
    });
    try {
      await this.#pool.query('SELECT pg_notify($1, $2)', [this.channel, nonce]);
      return await arrived;
    } finally {
      clearTimeout(timer);
      this.#probe = undefined;
    }
  }

  #startPolling(): void {
    if (this.#pollTimer || this.#closed) return;
    this.#pollTimer = setInterval(() => {
      this.reload().catch((err: Error) => {
        this.#logger.warn(`Reloading the tenant registry failed: ${err.message}`);
      });
    }, this.#options.pollIntervalMs);
    this.#pollTimer.unref();
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#reconnectTimer) return;
    const delay = this.#reconnectDelay;
    this.#reconnectDelay = Math.min(RECONNECT_MAX_MS, delay * 2);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#connectListener().catch(() => this.#scheduleReconnect());
    }, delay);
    this.#reconnectTimer.unref();
  }
}
