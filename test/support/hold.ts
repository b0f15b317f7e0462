import type { SchemaDb } from '../../lib/index.js';

/**
 * Opens a transaction on `db` and keeps it (and its connection) open until `release()`, which
 * resolves once the transaction has committed. Resolves when the transaction is open.
 */
export function holdTransaction(db: SchemaDb): Promise<{ release(): Promise<unknown> }> {
  return hold((wait) => db.transaction(wait));
}

/**
 * Starts `work` and resolves once it calls `wait()`, which keeps it waiting until `release()`;
 * `release()` resolves with what `work` resolved with.
 */
export async function hold(
  work: (wait: () => Promise<void>) => Promise<unknown>,
): Promise<{ release(): Promise<unknown> }> {
  let finish!: () => void;
  const gate = new Promise<void>((resolve) => (finish = resolve));
  let opened!: () => void;
  const open = new Promise<void>((resolve) => (opened = resolve));
  const done = work(() => {
    opened();
    return gate;
  });
  await Promise.race([open, done]);
  return {
    release() {
      finish();
      return done;
    },
  };
}
