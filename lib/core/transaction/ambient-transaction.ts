import { AsyncLocalStorage } from 'node:async_hooks';
import type pg from 'pg';
import type { ClientQueryRunner } from '../query/query-runner.js';

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
  /** `undefined` for a pending frame, whose transaction names its own pool once there is one. */
  readonly pool: pg.Pool | undefined;
  /**
   * `null` suspends an outer transaction on this pool (`propagation: 'not-supported'`); a
   * function is a pending frame, asked each time (`undefined`: look further out).
   */
  readonly tx: AmbientTransaction | null | (() => AmbientTransaction | undefined);
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
    let tx: AmbientTransaction | null;
    if (typeof frame.tx === 'function') {
      const pending = frame.tx();
      if (pending === undefined || pending.runner.env.pool !== pool) continue;
      tx = pending;
    } else {
      if (frame.pool !== pool) continue;
      tx = frame.tx;
    }
    if (tx === null || !tx.runner.isOpen) return undefined;
    return tx;
  }
  return undefined;
}

/**
 * The transaction of this flow's innermost frame, whatever its pool: inside the callback of
 * `SchemaDb.transaction()`, the transaction (or savepoint) that call runs it in.
 */
export function innermostTransaction(): AmbientTransaction | undefined {
  const tx = storage.getStore()?.tx;
  return typeof tx === 'function' ? tx() : (tx ?? undefined);
}

/**
 * Runs `fn` with a pending frame: `get()` is asked on every lookup, and while it returns a
 * transaction, that is this flow's transaction on its pool. For callers (the Kysely driver)
 * that must set up the flow before the transaction exists: Kysely begins it after handing
 * out the connection, then runs the user's callback in the flow set up here.
 */
export function runWithPendingTransaction<T>(
  get: () => AmbientTransaction | undefined,
  fn: () => T,
): T {
  return storage.run({ pool: undefined, tx: get, outer: storage.getStore() }, fn);
}

/** Runs `fn` with `tx` as this flow's transaction on `pool` (`null`: with none). */
export function runInTransaction<T>(pool: pg.Pool, tx: AmbientTransaction | null, fn: () => T): T {
  return storage.run({ pool, tx, outer: storage.getStore() }, fn);
}
