// The per-schema advisory lock under which migrations run, and who holds it when a wait for it
// times out.
import type pg from 'pg';
import { inTransaction } from '../connection/sessions.js';
import { MigrationLockTimeoutError, type MigrationLockHolder } from './migration.errors.js';

/**
 * Advisory lock namespace ("pgtn") of the library's locks; the second key is `hashtext(name)`.
 * Migrating a schema takes the lock keyed by the schema's name (tenants' locks share it).
 */
export const ADVISORY_LOCK_NAMESPACE = 0x7067746e;

/** Default longest wait for a schema's migration lock: 5 minutes. */
export const DEFAULT_MIGRATION_LOCK_TIMEOUT_MS = 300_000;
const LOCK_NOT_AVAILABLE = '55P03';

/**
 * How long a lock is held: until the transaction ends, or by the connection until it is
 * unlocked (PostgreSQL's session-level lock, for files that run outside a transaction).
 */
type LockScope = 'transaction' | 'connection';

const LOCK_SQL: Record<LockScope, string> = {
  transaction: 'SELECT pg_advisory_xact_lock($1, hashtext($2))',
  connection: 'SELECT pg_advisory_lock($1, hashtext($2))',
};

/**
 * Runs `fn` in a transaction holding the schema's advisory lock. The lock is
 * transaction-scoped, so it is released with the transaction even through a transaction-mode
 * pooler (where a session-level lock and its unlock could land on different server connections).
 */
export function inLockedTransaction<T>(
  client: pg.Client,
  schema: string,
  timeoutMs: number,
  fn: () => Promise<T>,
): Promise<T> {
  return inTransaction(client, async () => {
    await acquireMigrationLock(client, schema, 'transaction', timeoutMs);
    return fn();
  });
}

/**
 * Takes the schema's advisory lock, waiting at most `timeoutMs` (PostgreSQL's `lock_timeout`,
 * which bounds advisory lock waits too; `0` waits forever). Only the wait is bounded: the limit
 * is lifted again before the migration's own statements run.
 *
 * @throws MigrationLockTimeoutError naming the holder, when the wait timed out.
 */
export async function acquireMigrationLock(
  client: pg.Client,
  schema: string,
  scope: LockScope,
  timeoutMs: number,
): Promise<void> {
  const lockSql = LOCK_SQL[scope];
  const inTransaction = scope === 'transaction';
  if (timeoutMs === 0) {
    await client.query(lockSql, [ADVISORY_LOCK_NAMESPACE, schema]);
    return;
  }
  const set = inTransaction ? 'SET LOCAL' : 'SET';
  await client.query(`${set} lock_timeout = ${timeoutMs}`);
  try {
    await client.query(lockSql, [ADVISORY_LOCK_NAMESPACE, schema]);
  } catch (err) {
    if ((err as { code?: string }).code !== LOCK_NOT_AVAILABLE) throw err;
    // The transaction is aborted; look the holder up outside it.
    if (inTransaction) await client.query('ROLLBACK');
    else await client.query('RESET lock_timeout');
    const holder = await lockHolder(client, schema).catch(() => undefined);
    throw new MigrationLockTimeoutError(schema, timeoutMs, holder, { cause: err });
  }
  await client.query(inTransaction ? 'SET LOCAL lock_timeout TO DEFAULT' : 'RESET lock_timeout');
}

/** Lets go of the schema's connection-scoped lock. Never throws: the original error matters more. */
export async function releaseMigrationLock(client: pg.Client, schema: string): Promise<void> {
  // If the connection broke, ending it frees the lock anyway.
  await client
    .query('SELECT pg_advisory_unlock($1, hashtext($2))', [ADVISORY_LOCK_NAMESPACE, schema])
    .catch(() => undefined);
}

/** The backend holding the schema's lock, as `pg_stat_activity` shows it. */
async function lockHolder(
  client: pg.Client,
  schema: string,
): Promise<MigrationLockHolder | undefined> {
  const { rows } = await client.query<{
    pid: number;
    application_name: string;
    since: Date;
    state: string | null;
  }>(
    `SELECT a.pid, a.application_name, coalesce(a.xact_start, a.backend_start) AS since, a.state
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
        AND l.classid = $1::bigint::oid
        AND l.objid = (hashtext($2)::bigint & 4294967295)::oid
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      LIMIT 1`,
    [ADVISORY_LOCK_NAMESPACE, schema],
  );
  const row = rows[0];
  return row
    ? { pid: row.pid, applicationName: row.application_name, since: row.since, state: row.state }
    : undefined;
}
