import { AsyncLocalStorage } from 'node:async_hooks';
import type pg from 'pg';
import type { ClientQueryRunner } from './query-runner.js';

/**
 * The transaction the current async flow runs in, for one pool. Internal: users see it only as
 * managers that join it.
 */
export interface AmbientTransaction {
  /** The innermost runner of this flow: a savepoint's runner inside a nested scope. */
  readonly runner: ClientQueryRunner;
  /** Savepoint name counter, shared by every manager of the transaction. */
  readonly savepoints: { next: number };
}

interface Frame {
  readonly pool: pg.Pool;
  /** `null` suspends an outer transaction on this pool (`propagation: 'not-supported'`). */
  readonly tx: AmbientTransaction | null;
  readonly outer: Frame | undefined;
}

// One storage for the process, but every frame names its pool, so two applications (or two
// TestingModules) in one process never see each other's transactions. The frames themselves
// live only in the async flow that opened them: nothing here outlives a call.
const storage = new AsyncLocalStorage<Frame>();

/**
 * The transaction this flow runs in on `pool`, if any. One that has ended is no longer current:
 * a timer or listener first set up inside a transaction inherits its flow, and must go back to
 * the pool afterwards rather than fail with `TransactionClosedError` for the life of the process.
 */
export function currentTransaction(pool: pg.Pool): AmbientTransaction | undefined {
  for (let frame = storage.getStore(); frame !== undefined; frame = frame.outer) {
    if (frame.pool !== pool) continue;
    if (frame.tx === null || !frame.tx.runner.isOpen) return undefined;
    return frame.tx;
  }
  return undefined;
}

/** Runs `fn` with `tx` as this flow's transaction on `pool` (`null`: with none). */
export function runInTransaction<T>(pool: pg.Pool, tx: AmbientTransaction | null, fn: () => T): T {
  return storage.run({ pool, tx, outer: storage.getStore() }, fn);
}
