// The transaction engine behind SchemaDb.transaction(): BEGIN/COMMIT/ROLLBACK on a connection of
// its own, the propagation decision carried out, savepoints and retries.
import { InvalidOptionsError, TransactionAbortedError } from '../../shared/errors.js';
import { isBrokenConnectionError } from '../../connection/connection-errors.js';
import {
  checkout,
  ClientQueryRunner,
  PoolQueryRunner,
  type QueryRunner,
} from '../query/query-runner.js';
import {
  currentTransaction,
  runInTransaction,
  type AmbientTransaction,
} from './ambient-transaction.js';
import { decidePropagation } from './propagation.js';
import { withRetries } from './retry.js';
import { runInSavepoint } from './savepoint.js';
import type { IsolationLevel, TransactionOptions } from './transaction-options.js';

/**
 * What the engine needs of the manager `transaction()` was called on (a `SchemaDb`, as `M`). The
 * engine never builds a manager itself: it asks for one on the runner the callback must use.
 */
export interface TransactionHost<M> {
  /** The manager's runner: the pool's, a replica's, or a transaction's client. */
  readonly runner: QueryRunner;
  /** Its savepoint name counter, shared by every manager of its transaction. */
  readonly savepoints: { next: number };
  /** The manager itself. */
  readonly manager: M;
  /** A manager like this one (same schema) whose queries go to `runner`. */
  managerOn(runner: QueryRunner, savepoints?: { next: number }): M;
}

const ISOLATION_SQL: Record<IsolationLevel, string> = {
  'read committed': 'READ COMMITTED',
  'repeatable read': 'REPEATABLE READ',
  serializable: 'SERIALIZABLE',
};

/**
 * Runs `fn` as `SchemaDb.transaction()` documents it: in what `options.propagation` decides (a
 * new transaction, the running one, a savepoint of it, or none), with a manager bound to it.
 *
 * @throws InvalidOptionsError on invalid options, before anything runs.
 */
export async function runTransaction<M, T>(
  host: TransactionHost<M>,
  fn: (tx: M) => Promise<T>,
  options: TransactionOptions,
): Promise<T> {
  const begin = beginStatement(options);
  const retries = options.retries ?? 0;
  if (!Number.isInteger(retries) || retries < 0) {
    throw new InvalidOptionsError(
      `transaction retries must be a non-negative integer, received ${retries}.`,
    );
  }
  const { runner } = host;
  const { pool } = runner.env;
  // A transaction's own manager runs on the transaction's client.
  const own: AmbientTransaction | undefined =
    runner.client !== null
      ? { runner: runner as ClientQueryRunner, savepoints: host.savepoints }
      : undefined;
  const decision = decidePropagation(
    options,
    own,
    () => currentTransaction(pool),
    begin !== 'BEGIN' || retries > 0,
  );
  switch (decision.run) {
    case 'savepoint': {
      const { outer } = decision;
      return runInSavepoint(pool, outer, (inner) => fn(host.managerOn(inner, outer.savepoints)));
    }
    case 'joined': {
      const { outer } = decision;
      const tx = host.managerOn(outer.runner, outer.savepoints);
      return runInTransaction(pool, outer, () => fn(tx));
    }
    case 'outside': {
      // Suspends any transaction of this flow on the pool for the call.
      const db =
        runner.client === null ? host.manager : host.managerOn(new PoolQueryRunner(runner.env));
      return runInTransaction(pool, null, () => fn(db));
    }
    case 'new':
      return withRetries(retries, () => transactionOnce(host, fn, begin, options.isolationLevel));
  }
}

/** One attempt: a connection of its own, `begin`, `fn`, then COMMIT, or ROLLBACK when it throws. */
async function transactionOnce<M, T>(
  host: TransactionHost<M>,
  fn: (tx: M) => Promise<T>,
  begin: string,
  isolationLevel: IsolationLevel | undefined,
): Promise<T> {
  const { env, key } = host.runner;
  const lease = await checkout(env, key);
  const { client } = lease;
  const runner = new ClientQueryRunner(env, client, undefined, isolationLevel);
  let discard: Error | undefined;
  try {
    await client.query(begin);
  } catch (err) {
    lease.release(isBrokenConnectionError(err) ? (err as Error) : undefined);
    throw err;
  }
  try {
    try {
      const ambient: AmbientTransaction = { runner, savepoints: { next: 1 } };
      const tx = host.managerOn(runner, ambient.savepoints);
      const result = await runInTransaction(env.pool, ambient, () => fn(tx));
      runner.close();
      const commit = await client.query('COMMIT');
      // An aborted transaction (an error caught inside fn) "commits" as a ROLLBACK.
      if (commit.command !== 'COMMIT') throw new TransactionAbortedError();
      return result;
    } catch (err) {
      runner.close();
      // After a failed COMMIT the server has already ended the transaction and ROLLBACK is a
      // harmless no-op; if ROLLBACK itself fails, the connection is gone.
      if (lease.brokenBy) {
        discard = lease.brokenBy;
      } else {
        await client.query('ROLLBACK').catch((rollbackErr: Error) => {
          discard = rollbackErr;
        });
      }
      throw err;
    }
  } finally {
    // Errors thrown by fn do not condemn the connection: a successful ROLLBACK proves it
    // healthy. Only a failed ROLLBACK or an error event on the client discards it.
    runner.close();
    lease.release(discard);
  }
}

function beginStatement({ isolationLevel, readOnly }: TransactionOptions): string {
  let sql = 'BEGIN';
  if (isolationLevel !== undefined) {
    const level = ISOLATION_SQL[isolationLevel];
    if (level === undefined) {
      throw new InvalidOptionsError(
        `Unknown isolationLevel ${JSON.stringify(isolationLevel)}: use 'read committed', 'repeatable read' or 'serializable'.`,
      );
    }
    sql += ` ISOLATION LEVEL ${level}`;
  }
  if (readOnly) sql += ' READ ONLY';
  return sql;
}
