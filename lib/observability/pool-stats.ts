import type pg from 'pg';

/** Pool figures shared by the exporters. */
export interface PoolStats {
  /** Open connections. */
  readonly total: number;
  /** Open connections not checked out. */
  readonly idle: number;
  /** Callers waiting for a connection. */
  readonly waiting: number;
  /** `pool.max`. */
  readonly max: number;
  /** Checked-out connections divided by `max`, 0–1. */
  readonly utilisation: number;
}

/** Reads the pool's figures. */
export function poolStats(pool: pg.Pool): PoolStats {
  const max = pool.options.max ?? 10;
  const busy = pool.totalCount - pool.idleCount;
  return {
    total: pool.totalCount,
    idle: pool.idleCount,
    waiting: pool.waitingCount,
    max,
    utilisation: max > 0 ? busy / max : 0,
  };
}
