import { PoolAcquireTimeoutError } from '../shared/errors.js';

/** Gives back a slot taken with {@link TenantFairShare.acquire}. Idempotent. */
export type ReleaseSlot = () => void;

/**
 * No connection slot of the tenant's share became free in time: the tenant already holds its
 * `tenancy.maxConnectionsPerTenant` connections and its other work queued behind them for
 * `pool.acquireTimeoutMs`. Other tenants are not affected. Shorten that tenant's queries or
 * transactions, shed its load, or raise the share. A `PoolAcquireTimeoutError`, so handlers of
 * pool exhaustion see it too.
 */
export class TenantShareTimeoutError extends PoolAcquireTimeoutError {
  constructor(
    /** The tenant whose share was full. */
    readonly tenantId: string,
    /** The share: most connections one tenant may hold at once. */
    readonly maxPerTenant: number,
    timeoutMs: number,
    poolMax: number,
  ) {
    super(timeoutMs, poolMax);
    this.message =
      `Timed out after ${timeoutMs} ms waiting for a connection: tenant ${JSON.stringify(tenantId)} already holds its share of ${maxPerTenant} of the pool's ${poolMax} connections (tenancy.maxConnectionsPerTenant). ` +
      "Other tenants are unaffected. Shorten this tenant's queries and transactions, reduce its concurrency, or raise the share.";
  }
}

/** Options of {@link TenantFairShare}. */
export interface TenantFairShareOptions {
  /** Most connections one tenant holds (or waits for in the pool) at once. */
  readonly maxPerTenant: number;
  /** Longest wait in the tenant's queue. */
  readonly acquireTimeoutMs: number;
  /** `pool.max`, for messages. */
  readonly poolMax: number;
  /** The tenant the calling code works for, or `undefined` for work outside any tenant. */
  readonly tenantOf: () => string | undefined;
}

interface Waiter {
  readonly resolve: (release: ReleaseSlot) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

interface Share {
  active: number;
  readonly waiting: Waiter[];
}

/**
 * A per-tenant cap on the shared pool. Before a checkout, work of a tenant takes one of its
 * `maxPerTenant` slots; when they are all taken, it waits in that tenant's own queue (FIFO)
 * rather than in the pool's, so a tenant's burst can hold at most its share of the pool and
 * queue at most that many requests ahead of other tenants. Work outside a tenant context is not
 * capped. A slot is held from the checkout request until the connection is given back.
 */
export class TenantFairShare {
  readonly #options: TenantFairShareOptions;
  readonly #shares = new Map<string, Share>();

  constructor(options: TenantFairShareOptions) {
    this.#options = options;
  }

  /** Connections (held or being acquired) and queued requests, per tenant currently active. */
  get stats(): { tenants: number; active: number; waiting: number } {
    let active = 0;
    let waiting = 0;
    for (const share of this.#shares.values()) {
      active += share.active;
      waiting += share.waiting.length;
    }
    return { tenants: this.#shares.size, active, waiting };
  }

  /**
   * Takes a slot for the calling code's tenant. Returns its release function at once when the
   * tenant is under its share, a promise of it when the tenant must wait, or `undefined` when
   * the work belongs to no tenant.
   *
   * @throws TenantShareTimeoutError (as a rejection) after `acquireTimeoutMs` in the queue.
   */
  acquire(): ReleaseSlot | Promise<ReleaseSlot> | undefined {
    const tenant = this.#options.tenantOf();
    if (tenant === undefined) return undefined;
    let share = this.#shares.get(tenant);
    if (share === undefined) {
      share = { active: 0, waiting: [] };
      this.#shares.set(tenant, share);
    }
    if (share.active < this.#options.maxPerTenant) {
      share.active++;
      return this.#releaser(tenant, share);
    }
    const queued = share;
    return new Promise<ReleaseSlot>((resolve, reject) => {
      const { acquireTimeoutMs, maxPerTenant, poolMax } = this.#options;
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          const at = queued.waiting.indexOf(waiter);
          if (at >= 0) queued.waiting.splice(at, 1);
          reject(new TenantShareTimeoutError(tenant, maxPerTenant, acquireTimeoutMs, poolMax));
        }, acquireTimeoutMs),
      };
      queued.waiting.push(waiter);
    });
  }

  #releaser(tenant: string, share: Share): ReleaseSlot {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = share.waiting.shift();
      if (next !== undefined) {
        // The slot passes straight to the tenant's next waiter: `active` is unchanged.
        clearTimeout(next.timer);
        next.resolve(this.#releaser(tenant, share));
        return;
      }
      share.active--;
      if (share.active === 0) this.#shares.delete(tenant);
    };
  }
}
