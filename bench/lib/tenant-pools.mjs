// One pg.Pool per tenant under a global connection cap: how per-tenant pools have to behave
// when tenants outnumber the connections you may open. Each tenant pool holds at most
// `perTenant` connections; at most `budget` connections exist in total. A tenant without a pool
// evicts the least recently used idle tenant pool (closing its connections) or, when every pool
// is busy, waits for one to become idle.

export class TenantPools {
  #budget;
  #perTenant;
  #makePool;
  /** tenant → { tenant, pool, active }; Map order is recency (oldest first). */
  #pools = new Map();
  #closing = 0;
  #waiters = [];
  /** Counters since creation: pools opened, evicted; most connections that could exist at once. */
  stats = { opened: 0, evicted: 0, peakOpen: 0 };

  /**
   * @param {{ budget: number, perTenant?: number, makePool: (tenant: string, max: number) => import('pg').Pool }} options
   */
  constructor({ budget, perTenant = 1, makePool }) {
    if (perTenant > budget) throw new Error('perTenant must not exceed budget');
    this.#budget = budget;
    this.#perTenant = perTenant;
    this.#makePool = makePool;
  }

  /** Connections that may be open now: live pools × their max, plus pools still closing. */
  get #open() {
    return (this.#pools.size + this.#closing) * this.#perTenant;
  }

  /** `pool.query` on the tenant's pool. */
  async query(tenant, text, params) {
    const entry = await this.#acquire(tenant);
    try {
      return await entry.pool.query(text, params);
    } finally {
      if (--entry.active === 0) this.#wakeOne();
    }
  }

  async #acquire(tenant) {
    for (;;) {
      const hit = this.#pools.get(tenant);
      if (hit) {
        this.#pools.delete(tenant); // move to most recent
        this.#pools.set(tenant, hit);
        hit.active++;
        return hit;
      }
      if (this.#open + this.#perTenant <= this.#budget) {
        const entry = { tenant, pool: this.#makePool(tenant, this.#perTenant), active: 1 };
        this.#pools.set(tenant, entry);
        this.stats.opened++;
        this.stats.peakOpen = Math.max(this.stats.peakOpen, this.#open);
        return entry;
      }
      const victim = this.#leastRecentlyUsedIdle();
      if (victim) {
        this.#pools.delete(victim.tenant);
        this.#closing++;
        this.stats.evicted++;
        try {
          await victim.pool.end();
        } finally {
          this.#closing--;
          this.#wakeOne();
        }
        continue;
      }
      await new Promise((resolve) => this.#waiters.push(resolve));
    }
  }

  #leastRecentlyUsedIdle() {
    for (const entry of this.#pools.values()) if (entry.active === 0) return entry;
    return undefined;
  }

  #wakeOne() {
    this.#waiters.shift()?.();
  }

  /** Ends every tenant pool. */
  async close() {
    const pools = [...this.#pools.values()].map((e) => e.pool);
    this.#pools.clear();
    await Promise.allSettled(pools.map((p) => p.end()));
  }
}
