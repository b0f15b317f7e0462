import type pg from 'pg';
import { inTransaction, openSession, type SessionTracker } from '../connection/sessions.js';
import { ADVISORY_LOCK_NAMESPACE as LOCK_NAMESPACE } from '../migrations/migration-lock.js';
import type { TenantStatus } from './tenant-state.js';

// The migration runner's namespace; the second key is hashtext(schema). Creating, dropping and
// migrating a tenant all take this one lock.

/**
 * Creates or upgrades shared bookkeeping (the registry, the rollout tables) once across
 * instances starting together: `isCurrent` on `pool` first (one read when there is nothing to
 * do), else, on a session of its own, under the advisory lock `key`, `isCurrent` again and then
 * `apply`, in one transaction.
 */
export async function ensureOnce(
  pool: pg.Pool,
  session: { connection: pg.ClientConfig; tracker?: SessionTracker },
  key: string,
  isCurrent: (db: pg.Pool | pg.ClientBase) => Promise<boolean>,
  apply: (client: pg.ClientBase) => Promise<void>,
): Promise<void> {
  if (await isCurrent(pool)) return;
  const opened = await openSession(session.connection, {
    tracker: session.tracker,
    applicationName: 'nestjs-pg-tenancy:registry',
  });
  const { client } = opened;
  try {
    await inTransaction(client, async () => {
      await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_NAMESPACE, key]);
      if (!(await isCurrent(client))) await apply(client);
    });
  } finally {
    await opened.close();
  }
}

/** Takes tenant `schema`'s lock for the rest of the open transaction on `client`. */
export async function lockTenant(client: pg.ClientBase, schema: string): Promise<void> {
  await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [LOCK_NAMESPACE, schema]);
}

/** A tenant was dropped (or is being dropped) while work on it waited: nothing was done. */
export class TenantGoneError extends Error {
  constructor(
    readonly tenantId: string,
    readonly state: TenantStatus | null,
  ) {
    super(
      state === null
        ? `Tenant "${tenantId}" no longer exists.`
        : `Tenant "${tenantId}" is ${state}; it was left alone.`,
    );
    this.name = 'TenantGoneError';
  }
}

/**
 * A migration guard: re-reads the tenant's row under the tenant's lock and refuses (with
 * `TenantGoneError`) unless its status is one of `allowed`, so a migration never touches a tenant
 * that is gone or being dropped.
 */
export function tenantGuard(
  table: string,
  id: string,
  allowed: readonly TenantStatus[],
): (client: pg.ClientBase) => Promise<void> {
  return async (client) => {
    const { rows } = await client.query<{ status: TenantStatus }>(
      `SELECT status FROM ${table} WHERE id = $1`,
      [id],
    );
    const status = rows[0]?.status ?? null;
    if (status === null || !allowed.includes(status)) throw new TenantGoneError(id, status);
  };
}

/**
 * Tries to take tenant `schema`'s lock in shared mode for the rest of the open transaction on
 * `client`: any number of shared holders at once, none while someone holds it exclusively.
 * Resolves `false` at once when it is held exclusively.
 */
export async function tryLockTenantShared(client: pg.ClientBase, schema: string): Promise<boolean> {
  const { rows } = await client.query<{ locked: boolean }>(
    'SELECT pg_try_advisory_xact_lock_shared($1, hashtext($2)) AS locked',
    [LOCK_NAMESPACE, schema],
  );
  return rows[0].locked;
}

/**
 * Takes tenant `schema`'s lock on `client` until released (PostgreSQL's session-level lock, on
 * the key the transaction-scoped tenant lock uses). Taken before a `REPEATABLE READ` transaction begins, its snapshot is then taken after
 * any migration or drop that held the lock has committed. Returns the release.
 */
export async function holdTenantLock(
  client: pg.ClientBase,
  schema: string,
): Promise<() => Promise<void>> {
  await client.query('SELECT pg_advisory_lock($1, hashtext($2))', [LOCK_NAMESPACE, schema]);
  return async () => {
    await client
      .query('SELECT pg_advisory_unlock($1, hashtext($2))', [LOCK_NAMESPACE, schema])
      .catch(() => undefined);
  };
}
