import type pg from 'pg';
import type { DrainController } from '../connection/drain-controller.js';
import type { StatementCache, StatementCacheStats } from '../connection/statement-cache.js';
import type { ReplicaStatus } from '../connection/replicas/replica-health.js';
import { affinityStats, type PoolAffinityStats } from '../connection/pool-affinity.js';
import { poolStats, type PoolStats } from './pool-stats.js';
import type { TenantStatus } from '../tenancy/tenant-state.js';
import type { TenantTier } from '../tenancy/tenant-tier.js';
import type { QueryObserver, SlowQuery } from './query-observer.js';

/** Result of {@link DatabaseMonitor.ping}. */
export interface PingResult {
  /** Whether `SELECT 1` succeeded within the timeout. */
  readonly ok: boolean;
  /** Time to a connection and the answer, or until the failure. */
  readonly latencyMs: number;
  /** Why the ping failed (no password or SQL in it). */
  readonly error?: string;
}

/**
 * How current an instance's view of the tenant registry is (see `tenancy.maxStalenessMs`).
 * `synced: false` means entries are re-checked against the table before use: still correct,
 * one indexed query per tenant and bound.
 */
export interface TenantSyncStatus {
  /**
   * `listening`: change notifications arrive; `polling`: they cannot (a transaction-mode pooler)
   * and the registry is re-read every `tenancy.pollIntervalMs`; `reconnecting`: the listener is
   * lost; `stopped`: not started or closed.
   */
  readonly mode: 'listening' | 'polling' | 'reconnecting' | 'stopped';
  /** The view is known complete as of at most `maxStalenessMs` ago. */
  readonly synced: boolean;
  /** Age of the last proof that the view is complete, ms; `null` before the first. */
  readonly lagMs: number | null;
  /** The configured staleness bound (`tenancy.maxStalenessMs`), in milliseconds. */
  readonly maxStalenessMs: number;
}

/** How many tenants this instance's registry view holds in one tier and status. */
export interface TenantCount {
  /** `schema` or `pooled`. */
  readonly tier: TenantTier;
  /** `provisioning`, `active`, `suspended` or `dropping`. */
  readonly status: TenantStatus;
  /** Tenants in that tier and status. */
  readonly count: number;
}

/** @internal Where the monitor and the metrics read the registry's sync state and counts from. */
export interface TenantSyncSource {
  current?: () => TenantSyncStatus;
  counts?: () => TenantCount[];
}

/** @internal Where the monitor and the metrics read the replicas' health from. */
export interface ReplicaStatusSource {
  statuses(): ReplicaStatus[];
}

/**
 * Pool figures, slow queries and a ping, for dashboards, health checks and debugging. Inject it
 * anywhere the module is visible.
 */
export class DatabaseMonitor {
  readonly #pool: pg.Pool;
  readonly #observer: QueryObserver;
  readonly #drain: DrainController;
  readonly #tenantSync: TenantSyncSource;
  readonly #statements: StatementCache | undefined;
  readonly #replicas: ReplicaStatusSource | undefined;
  #highSince: number | undefined;

  /** @internal Created by `DatabaseModule`. */
  constructor(
    pool: pg.Pool,
    observer: QueryObserver,
    drain: DrainController,
    tenantSync: TenantSyncSource = {},
    statements?: StatementCache,
    replicas?: ReplicaStatusSource,
  ) {
    this.#pool = pool;
    this.#observer = observer;
    this.#drain = drain;
    this.#tenantSync = tenantSync;
    this.#statements = statements;
    this.#replicas = replicas;
  }

  /**
   * Managed prepared statements: hit rate, evictions, re-prepares and statements held on the
   * server; `undefined` when `preparedStatements` is `false`.
   */
  getStatementStats(): StatementCacheStats | undefined {
    return this.#statements?.stats();
  }

  /**
   * Each streaming replica's state (`up`, `lagging`, `down`, `not-replica`, `unknown`), lag and
   * read count, as of its last health check; `undefined` without `replicas`.
   */
  getReplicas(): ReplicaStatus[] | undefined {
    return this.#replicas?.statuses();
  }

  /** How current the tenant registry's view is; `undefined` without `tenancy`. */
  getTenantSync(): TenantSyncStatus | undefined {
    return this.#tenantSync.current?.();
  }

  /**
   * Tenants in this instance's view of the registry, by tier and status (only the pairs that
   * occur); `undefined` without `tenancy`. Counted from memory, no query.
   */
  getTenantCounts(): TenantCount[] | undefined {
    return this.#tenantSync.counts?.();
  }

  /** Open, idle and waiting connections, `max`, and utilisation (checked out / max). */
  getPoolStats(): PoolStats {
    return poolStats(this.#pool);
  }

  /**
   * Tenant affinity (`pool.affinity`): how checkouts for a schema were served (on a preferred
   * connection, on one that had served the schema, or stolen by an idle one so nobody waited),
   * the connections recycled for the schema bound (`pool.backendMemory`), and the distinct
   * schemas each open connection has served. `undefined` when affinity is off.
   */
  getAffinityStats(): PoolAffinityStats | undefined {
    return affinityStats(this.#pool);
  }

  /** The most recent slow queries (see `slowQueryMs`), newest last. */
  getSlowQueries(): readonly SlowQuery[] {
    return this.#observer.slowQueries;
  }

  /** `true` once graceful shutdown has begun. */
  get shuttingDown(): boolean {
    return this.#drain.draining;
  }

  /**
   * How long utilisation has been at or above `threshold` without a dip, as seen by the calls
   * to this method (a health check calls it periodically); `undefined` while below it.
   */
  highUtilisationFor(threshold: number): number | undefined {
    const now = Date.now();
    if (this.getPoolStats().utilisation < threshold) {
      this.#highSince = undefined;
      return undefined;
    }
    this.#highSince ??= now;
    return now - this.#highSince;
  }

  /**
   * Runs `SELECT 1` through the pool, failing after `timeoutMs` (waiting for a free connection
   * counts). Never throws.
   */
  async ping(timeoutMs = 1_000): Promise<PingResult> {
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    const query = this.#pool.query('SELECT 1');
    query.catch(() => undefined); // settles later if the timeout wins
    try {
      await Promise.race([query, timeout]);
      return { ok: true, latencyMs: Math.round(performance.now() - started) };
    } catch (err) {
      return {
        ok: false,
        latencyMs: Math.round(performance.now() - started),
        error: (err as Error).message,
      };
    } finally {
      clearTimeout(timer);
    }
  }
}
