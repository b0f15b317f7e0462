import type pg from 'pg';
import { SavepointActiveError, TransactionClosedError } from '../../shared/errors.js';
import type { RawQueryEvent } from './query-event.js';
import { isBrokenConnectionError } from '../../connection/connection-errors.js';
import { checkout, type ClientQueryRunner, type QueryRunner } from './query-runner.js';

/**
 * A connection held for an operation of many protocol messages (a COPY, a cursor): the
 * transaction's own when the caller runs in one, otherwise one checked out of the pool through
 * the common checkout path (drain tracking, fair share, typed acquire errors).
 */
export interface HeldConnection {
  readonly client: pg.PoolClient;
  /** The runner when the connection belongs to a running transaction, else `null`. */
  readonly transaction: ClientQueryRunner | null;
  /**
   * Gives a pooled connection back (discarded when `err` says the connection broke); a
   * transaction's connection stays with its transaction. Idempotent.
   */
  release(err?: unknown): void;
}

/** @throws SavepointActiveError, TransactionClosedError, or an acquire error. */
export async function holdConnection(runner: QueryRunner): Promise<HeldConnection> {
  if (runner.client === null) {
    const lease = await checkout(runner.env, runner.key);
    return {
      client: lease.client,
      transaction: null,
      release: (err) =>
        lease.release(
          err !== undefined && isBrokenConnectionError(err) ? (err as Error) : undefined,
        ),
    };
  }
  const transaction = runner as ClientQueryRunner;
  // Same rule as a plain query: the outer manager may not write while a savepoint is open.
  if (transaction.savepointActive) throw new SavepointActiveError();
  if (!transaction.isOpen) throw new TransactionClosedError();
  return { client: runner.client, transaction, release: () => undefined };
}

/** Feeds one finished operation to the environment's hooks, slow-query log and metrics. */
export function recordOperation(
  runner: QueryRunner,
  started: number,
  event: Omit<RawQueryEvent, 'durationMs' | 'inTransaction'>,
): void {
  const sink = runner.env.sink;
  if (sink === undefined) return;
  const durationMs = performance.now() - started;
  if (sink.wants(durationMs)) {
    sink.record({ ...event, durationMs, inTransaction: runner.client !== null });
  }
}
