// The options of SchemaDb.transaction() and @Transactional(): isolation, propagation, retries.

/** Isolation levels accepted by {@link SchemaDb.transaction}. */
export type IsolationLevel = 'read committed' | 'repeatable read' | 'serializable';

/**
 * What `transaction()` (and `@Transactional()`) does when the calling code already runs in a
 * transaction on the same pool, opened by `db.transaction()` or a `@Transactional()` method
 * further up the call chain:
 *
 * - `'join'`: run in that transaction (no savepoint); start one when there is none.
 * - `'requires-new'`: always start an independent transaction on another connection, which
 *   commits or rolls back on its own. The outer one waits, holding its connection: a pool of
 *   size 1 deadlocks, and a row locked by the outer transaction blocks the inner one forever.
 * - `'nested'`: run in a savepoint of that transaction (a failure inside rolls back to it);
 *   start one when there is none.
 * - `'mandatory'`: join; throw `TransactionRequiredError` when there is none.
 * - `'never'`: run without a transaction; throw `TransactionNotAllowedError` inside one.
 * - `'not-supported'`: run without a transaction; an outer one is suspended for the call (its
 *   managers' queries inside go to the pool, outside the transaction).
 */
export type TransactionPropagation =
  'join' | 'requires-new' | 'nested' | 'mandatory' | 'never' | 'not-supported';

/** @internal */
export const PROPAGATIONS: ReadonlySet<string> = new Set<TransactionPropagation>([
  'join',
  'requires-new',
  'nested',
  'mandatory',
  'never',
  'not-supported',
]);

/** Options of {@link SchemaDb.transaction}. */
export interface TransactionOptions {
  /**
   * What to do when a transaction is already running on this pool in the calling code. When the
   * call joins or nests in it, the outer transaction's settings stand: `retries` is ignored (a
   * serialization failure propagates to the outermost transaction, whose retries re-run the
   * whole unit) and an `isolationLevel` other than the outer one's is refused.
   * Default: `'nested'` when called on a transaction's own manager (`tx.transaction()`), else
   * `'join'`.
   */
  propagation?: TransactionPropagation;
  /**
   * Isolation level of the transaction.
   * Default: the server's `default_transaction_isolation` (normally `read committed`).
   */
  isolationLevel?: IsolationLevel;
  /** Start a `READ ONLY` transaction. Default: `false`. */
  readOnly?: boolean;
  /**
   * How many times to re-run the whole callback after a serialization failure (SQLSTATE 40001)
   * or a deadlock (40P01), with jittered exponential backoff. Other errors never retry, so the
   * callback must be safe to run again (no side effects outside the database).
   * Default: `0`.
   */
  retries?: number;
}
