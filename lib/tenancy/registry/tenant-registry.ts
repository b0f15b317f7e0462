import type { LoggerService } from '@nestjs/common';
import pg from 'pg';
import { assertIdentifier } from '../../shared/identifiers.js';
import type { QueryEnvironment } from '../../core/query/query-environment.js';
import type { SchemaDb } from '../../core/schema-db.js';
import type { TenantHome } from '../../core/query/moved-retry.js';
import type { SessionTracker } from '../../connection/sessions.js';
import { isBrokenConnectionError } from '../../connection/connection-errors.js';
import { admitted, homeManager, TenantCache, type TenantEntry } from './tenant-cache.js';
import type { ResolvedPooledTier } from '../tenant-tier.js';
import type { RegistryNotice } from './registry-notice.js';
import { TenantRegistryStore } from './tenant-registry-store.js';
import { RegistrySync, type RegistrySyncState } from './tenant-registry-sync.js';
import { shareRead, type SharedRead } from './shared-read.js';
import { InvalidTenantIdError, TenantNotFoundError } from '../tenant.errors.js';

export type { TenantEntry } from './tenant-cache.js';
export type { RegistrySyncState } from './tenant-registry-sync.js';

/** What the registry needs of the resolved `tenancy` options (they satisfy it as they are). */
export interface RegistryOptions {
  readonly registrySchema: string;
  readonly schemaPrefix: string;
  readonly idPattern: RegExp;
  readonly maxStalenessMs: number;
  readonly pollIntervalMs: number;
  readonly negativeCacheMs: number;
  /** The pooled tier's schema and role; its defaults when the tier is off. */
  readonly pooled?: ResolvedPooledTier;
}

/** How long announced changes gather before they are re-read together. */
const STALE_FLUSH_MS = 5;
/** Above this many changed ids, one full reload is cheaper than a query per id. */
const STALE_BATCH_RELOAD = 32;

/**
 * SQLSTATEs a tenant's work gets when the tenant is dropped under it: its table or schema is gone
 * (42P01, 3F000), or the drop cancelled its statement (57014) or ended its session (57P01).
 */
const VANISHED = new Set(['42P01', '3F000', '57014', '57P01']);

/**
 * The tenants every request is checked against: an in-memory view of the registry table, each
 * tenant with its `SchemaDb` (built when first used), that moves only forward (by row version) and is proven
 * current within `maxStalenessMs` (see `RegistrySync`). Resolving a tenant is a Map lookup and a
 * clock read; an entry is re-checked against the table (one indexed query, shared by concurrent
 * lookups of that id) only when the instance cannot prove it current within the bound.
 *
 * While the view is proven current, an unknown id costs no query at all, so a flood of bogus ids
 * never reaches the database; otherwise a miss costs one primary-key lookup and unknown ids are
 * remembered for `negativeCacheMs`.
 *
 * Advanced: created and driven by `DatabaseModule` (with `tenancy`). It may be injected to read
 * the view (`find`, `entries`, `syncState`), but it is not part of the stable API and may change
 * in a minor release; `TenantService` and `DatabaseMonitor` are the supported surface.
 */
export class TenantRegistry {
  readonly #env: QueryEnvironment;
  readonly #connection: pg.ClientConfig;
  readonly #options: RegistryOptions;
  readonly #logger: LoggerService;
  readonly #store: TenantRegistryStore;
  readonly #cache: TenantCache;
  readonly #sync: RegistrySync;
  readonly #reads = new Map<string, SharedRead<void>>();
  /** Ids announced changed and not re-read yet, with the sequence number of the latest notice. */
  readonly #stale = new Map<string, number>();
  #staleSeq = 0;
  #flushTimer: NodeJS.Timeout | undefined;
  #reloading: SharedRead<number> | undefined;

  /**
   * @internal Built by the tenancy composition root (`createTenantRegistry`).
   * @param env the pool (and shutdown gate, query observer) the tenants' managers use.
   * @param connection connection settings with the password (not `pool.options`, where pg-pool
   *   hides it), used for the listener's and the registry's own connections.
   */
  constructor(
    env: QueryEnvironment | pg.Pool,
    connection: pg.ClientConfig,
    options: RegistryOptions,
    logger: LoggerService,
  ) {
    this.#env = env instanceof pg.Pool ? { pool: env } : env;
    this.#connection = connection;
    this.#options = options;
    this.#logger = logger;
    this.#store = new TenantRegistryStore(this.#env.pool, options.registrySchema);
    // A tenant's statement that reaches its old home after a move is re-run on the new one.
    const homes = { ...this.#env, rehome: (db: TenantHome) => this.#rehome(db) };
    this.#cache = new TenantCache((info) => homeManager(homes, info, options.pooled));
    this.#sync = new RegistrySync(
      {
        pool: this.#env.pool,
        connection,
        channel: this.#store.channel,
        heartbeatSql: this.#store.heartbeatSql,
        maxStalenessMs: options.maxStalenessMs,
        pollIntervalMs: options.pollIntervalMs,
        logger,
      },
      {
        onNotice: (notice, at) => this.#onNotice(notice, at),
        reload: () => this.#reload(),
        reconcile: () => this.#reconcile(),
        digest: () => this.#cache.digest(),
      },
    );
  }

  /** `"registrySchema"."tenants"`. */
  get table(): string {
    return this.#store.table;
  }

  /** The NOTIFY channel for registry changes (sent by the table's trigger). */
  get channel(): string {
    return this.#store.channel;
  }

  /** @internal The table: its DDL, and every read and write of its rows. */
  get store(): TenantRegistryStore {
    return this.#store;
  }

  /** `true` while the view is proven complete within `maxStalenessMs`. */
  get synced(): boolean {
    return this.#sync.state().synced;
  }

  /** How the view keeps up with the table: mode, whether synced, lag. For health and metrics. */
  syncState(): RegistrySyncState {
    return this.#sync.state();
  }

  /** Number of tenants in memory (every state). */
  get size(): number {
    return this.#cache.size;
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

  /**
   * Creates the registry table, or upgrades one from an older release in place (safe when many
   * instances start at once; one read when it is already current).
   *
   * @internal Called by `start()` and the CLI.
   */
  async ensureTable(tracker?: SessionTracker): Promise<void> {
    await this.#store.ensure(this.#connection, tracker ?? this.#env.drain);
  }

  /** Ensures the table, starts the change listener and loads every tenant. */
  async start(): Promise<void> {
    await this.ensureTable();
    await this.#sync.start();
  }

  /** Stops the listener. Idempotent. */
  async close(): Promise<void> {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    await this.#sync.close();
  }

  /**
   * Re-reads every tenant from the table and merges it into the view: a change applied while the
   * read ran is never undone by it. Concurrent calls share reads, and each gets one that started
   * after it was called.
   *
   * @internal Used by `TenantService.list()`.
   */
  async reload(): Promise<void> {
    const readAt = await this.#reload();
    this.#sync.heard(readAt);
  }

  /**
   * Re-reads the whole table and merges it; resolves with when the (last) read started. A call
   * while a read runs gets a read that starts after it: a listener that reconnects must not be
   * handed a snapshot taken before it listened again, or a change committed in between is lost.
   */
  #reload(): Promise<number> {
    this.#reloading = shareRead(
      this.#reloading,
      async () => {
        const readAt = performance.now();
        const merging = this.#cache.beginMerge(readAt);
        await this.#store.snapshot((rows) => merging.add(rows));
        merging.end();
        return readAt;
      },
      () => (this.#reloading = undefined),
    );
    return this.#reloading.done;
  }

  /** Compares every id and version with the view, then re-reads the rows that differ. */
  async #reconcile(): Promise<number> {
    const readAt = performance.now();
    const changed = this.#cache.compare(await this.#store.versions(), readAt);
    if (changed.length === 0) return readAt;
    const fetchedAt = performance.now();
    const rows = await this.#store.viewRows(changed);
    for (const row of rows) this.#cache.applyRow(row, fetchedAt);
    const found = new Set(rows.map((row) => row.id));
    for (const id of changed) if (!found.has(id)) this.#cache.applyMissing(id, fetchedAt);
    return readAt;
  }

  /**
   * Re-reads one tenant (one indexed query) and applies it if newer; the result is current as of
   * a read that started after this call. Reads of one id are serialised and shared. Resolves with
   * the tenant in whatever state its row has, or `null` when there is no row.
   *
   * @internal Used by `TenantService` after each change it makes.
   */
  refresh(id: string): Promise<TenantEntry | null> {
    const read = shareRead(
      this.#reads.get(id),
      async () => {
        const readAt = performance.now();
        const row = await this.#store.one(id);
        if (row) this.#cache.applyRow(row, readAt);
        else this.#cache.applyMissing(id, readAt);
      },
      () => this.#reads.delete(id),
    );
    this.#reads.set(id, read);
    return read.done.then(() => this.#cache.slot(id)?.entry ?? null);
  }

  /** Every tenant in memory, in every state. */
  entries(): TenantEntry[] {
    return this.#cache.entries();
  }

  /**
   * The tenant `id` in whatever state, or `null` if there is none. Validates first: a malformed
   * id throws and costs no query.
   */
  find(id: string): Promise<TenantEntry | null> {
    try {
      const hit = this.#lookupNow(id);
      return hit === undefined ? this.#lookupSlow(id) : Promise.resolve(hit);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * The active tenant `id`. Tenants being created or dropped are unknown to requests.
   * @throws InvalidTenantIdError, TenantNotFoundError, TenantSuspendedError
   */
  require(id: string): Promise<TenantEntry> {
    try {
      const hit = this.requireNow(id);
      return hit ? Promise.resolve(hit) : this.#lookupSlow(id).then((row) => admitted(id, row));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** @internal `require(id)` with no promise (hot path): `undefined` if the table must be asked. */
  requireNow(id: string): TenantEntry | undefined {
    const hit = this.#lookupNow(id);
    return hit === undefined ? undefined : admitted(id, hit);
  }

  /**
   * What the view says about `id` when it can be trusted now (`null`: no such tenant), or
   * `undefined` when the table must be asked. Validates first.
   */
  #lookupNow(id: string): TenantEntry | null | undefined {
    this.validate(id);
    if (this.#reads.size > 0 && this.#reads.has(id)) return undefined;
    if (this.#stale.size > 0 && this.#stale.has(id)) return undefined;
    const now = performance.now();
    const horizon = now - this.#options.maxStalenessMs;
    const slot = this.#cache.slot(id);
    const proven = this.#sync.heardAsOf >= horizon;
    if (slot) return proven || slot.checkedAt >= horizon ? (slot.entry ?? null) : undefined;
    // A miss is authoritative only while changes are arriving: with the listener known lost,
    // ids are looked up (and remembered as unknown for negativeCacheMs).
    if (proven && this.#sync.live) return null;
    if (this.#cache.isKnownMissing(id, now)) return null;
    return undefined;
  }

  /** One indexed read of `id` (shared with concurrent ones), then the view's answer. */
  async #lookupSlow(id: string): Promise<TenantEntry | null> {
    const upTo = this.#staleSeq;
    const known = this.#cache.slot(id) !== undefined;
    // The read starts after this moment, so "unknown" is true as of it: count from here.
    const readAt = performance.now();
    const entry = await this.refresh(id);
    if ((this.#stale.get(id) ?? Infinity) <= upTo) this.#stale.delete(id);
    if (!entry && !known) this.#cache.rememberMissing(id, readAt + this.#options.negativeCacheMs);
    return entry;
  }

  /** The manager of the tenant `db` served, as the table records it now. */
  async #rehome(db: TenantHome): Promise<SchemaDb | undefined> {
    const id = db.pooledTenantId ?? db.schema?.slice(this.#options.schemaPrefix.length);
    return id ? (await this.refresh(id))?.db : undefined;
  }

  /** Resolves once the view is proven current. For tests and readiness checks. */
  whenSynced(): Promise<void> {
    return this.#sync.whenSynced();
  }

  /**
   * `TenantNotFoundError` (with `err` as its cause) when tenant `id` is gone, being dropped, or
   * being created again after a drop, and `err` is what a drop does to work on it: a table or
   * schema missing (42P01, 3F000), a statement cancelled (57014) or a session ended (57P01, or
   * the connection lost while a transaction sat idle) — a request that raced a drop; `err`
   * otherwise. Costs one indexed query, and only on such errors.
   */
  async vanishedTenantError(id: string, err: unknown): Promise<unknown> {
    const code = (err as { code?: unknown } | null)?.code;
    if (!(typeof code === 'string' && VANISHED.has(code)) && !isBrokenConnectionError(err)) {
      return err;
    }
    const entry = await this.refresh(id).catch(() => undefined);
    const status = entry?.info.status;
    return entry === null || status === 'dropping' || status === 'provisioning'
      ? new TenantNotFoundError(id, { cause: err })
      : err;
  }

  /** @internal Cuts the listener as a network failure would; it reconnects and re-reads. */
  resync(reason = 'resync requested'): void {
    this.#sync.resync(reason);
  }

  #onNotice(notice: RegistryNotice, at: number): void {
    if (notice.op === 'truncate') {
      this.#reload().catch((err: Error) => this.#failed('the registry', err));
      return;
    }
    const reread =
      notice.version === null || notice.op === 'unknown'
        ? true
        : this.#cache.applyNotice(notice.id, notice.version, notice.op, notice.status, at);
    if (reread) this.#markStale(notice.id);
  }

  /**
   * Re-reads announced changes in batches: a bulk change (an operator's UPDATE of every row, a
   * fleet migration recording its progress) costs one reload instead of a query per row. A
   * lookup of a stale id re-reads it at once.
   */
  #markStale(id: string): void {
    this.#stale.set(id, ++this.#staleSeq);
    this.#flushTimer ??= setTimeout(() => this.#flush(), STALE_FLUSH_MS);
  }

  #flush(): void {
    this.#flushTimer = undefined;
    const upTo = this.#staleSeq;
    const ids = [...this.#stale.keys()];
    const settle = (id: string) => {
      if ((this.#stale.get(id) ?? Infinity) <= upTo) this.#stale.delete(id);
    };
    if (ids.length > STALE_BATCH_RELOAD) {
      this.#reload().then(
        () => ids.forEach(settle),
        (err: Error) => this.#failed('the registry', err),
      );
      return;
    }
    for (const id of ids) {
      this.refresh(id).then(
        () => settle(id),
        (err: Error) => this.#failed(`tenant ${id}`, err),
      );
    }
  }

  #failed(what: string, err: Error): void {
    this.#logger.warn(`Could not re-read ${what} after a change: ${err.message}`);
    // A change not applied is worse than a reload: resynchronise through a reconnect.
    this.#sync.resync(`re-read failed: ${err.message}`);
  }
}
