// A nested transaction: a savepoint of the running one.
import type pg from 'pg';
import { ConcurrentSavepointError } from '../../shared/errors.js';
import { ClientQueryRunner } from '../query/query-runner.js';
import { runInTransaction, type AmbientTransaction } from './ambient-transaction.js';

/**
 * Runs `fn` in a savepoint of `outer`: released when `fn` resolves, rolled back to when it throws
 * (the error is rethrown, and the outer transaction stays usable if the caller catches it).
 * `fn` receives the savepoint's runner; one savepoint at a time per runner. `pool`: the pool the
 * transaction's managers use, on which joined managers find the savepoint.
 *
 * @throws ConcurrentSavepointError while another savepoint of `outer` runs.
 */
export async function runInSavepoint<T>(
  pool: pg.Pool,
  outer: AmbientTransaction,
  fn: (runner: ClientQueryRunner) => Promise<T>,
): Promise<T> {
  const parent = outer.runner;
  if (parent.savepointActive) throw new ConcurrentSavepointError();
  parent.savepointActive = true;
  try {
    return await savepointOnce(pool, parent, outer.savepoints, fn);
  } finally {
    parent.savepointActive = false;
  }
}

async function savepointOnce<T>(
  pool: pg.Pool,
  parent: ClientQueryRunner,
  savepoints: { next: number },
  fn: (runner: ClientQueryRunner) => Promise<T>,
): Promise<T> {
  const name = `pgt_savepoint_${savepoints.next++}`;
  const runner = new ClientQueryRunner(parent.env, parent.client, parent);
  await parent.control(`SAVEPOINT ${name}`);
  try {
    // Inside the savepoint's scope, joined managers run in the savepoint too: their writes
    // are undone with it, and the outer runner (busy with the savepoint) is never touched.
    const inner: AmbientTransaction = { runner, savepoints };
    const result = await runInTransaction(pool, inner, () => fn(runner));
    runner.close();
    await parent.control(`RELEASE SAVEPOINT ${name}`);
    return result;
  } catch (err) {
    runner.close();
    // If this fails too, the outer transaction is aborted and its own ROLLBACK cleans up.
    await parent.control(`ROLLBACK TO SAVEPOINT ${name}`).catch(() => undefined);
    throw err;
  }
}
