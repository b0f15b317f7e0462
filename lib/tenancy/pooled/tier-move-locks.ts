// Waiting for locks on tables other tenants use, without sitting in their lock queue.
import type pg from 'pg';
import { inTransaction } from '../../connection/sessions.js';

/** DDL on the old home (triggers, drop) waits at most this for a lock, then tries again. */
const DDL_LOCK_TIMEOUT_MS = 200;
const DDL_GIVE_UP_MS = 30_000;

/**
 * DDL on tables other tenants use (the pooled ones) never sits in a lock queue, where every
 * write to them would wait behind it: each attempt waits `DDL_LOCK_TIMEOUT_MS` at most.
 */
export async function retryingLocks(client: pg.ClientBase, fn: () => Promise<void>): Promise<void> {
  const started = performance.now();
  for (let attempt = 1; ; attempt++) {
    try {
      await inTransaction(client, async () => {
        await client.query(`SET LOCAL lock_timeout = ${DDL_LOCK_TIMEOUT_MS}`);
        await fn();
      });
      return;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== '55P03' || performance.now() - started > DDL_GIVE_UP_MS) throw err;
      await delay(Math.min(1_000, 20 * 2 ** attempt) * (0.5 + Math.random() / 2));
    }
  }
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
