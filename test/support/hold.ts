import type { SchemaDb } from '../../lib/index.js';

/**
 * Opens a transaction on `db` and keeps it (and its connection) open until `release()`, which
 * resolves once the transaction has committed. Resolves when the transaction is open.
 */
export async function holdTransaction(db: SchemaDb): Promise<{ release(): Promise<void> }> {
  let finish!: () => void;
  const gate = new Promise<void>((resolve) => (finish = resolve));
  let opened!: () => void;
  const open = new Promise<void>((resolve) => (opened = resolve));
  const done = db.transaction(async () => {
    opened();
    await gate;
  });
  await open;
  return {
    release() {
      finish();
      return done;
    },
  };
}
