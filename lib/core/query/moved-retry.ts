// A statement that reached a tenant's old home after a move between tiers flipped it: re-run
// outside a transaction on the new home; inside one, a typed error (the transaction is lost).
import { TenantMovedError } from '../../shared/errors.js';

/** SQLSTATE a move's change capture raises for a write that reaches the old home after the flip. */
export const TENANT_MOVED_SQLSTATE = 'PTM01';

/**
 * What the old home answers a write after a flip (`PTM01`), raised without a round trip by a
 * manager the registry retired because its tenant moved (`SchemaDb.retire()`).
 */
export function leftHome(db: TenantHome): Error {
  const tenant = db.pooledTenantId ?? db.schema;
  return Object.assign(
    new Error(`tenant ${tenant} moved to another tier: this manager's home was left`),
    { code: TENANT_MOVED_SQLSTATE },
  );
}

/** Whether the tenant left a manager's home (`SchemaDb.retire()`); if dropped, what work gets. */
export interface LeftHome {
  left: boolean;
  refuse?: () => Error;
}

/** Where a retired manager's work goes: the tenant's new home, or (dropped) its refusal. */
export function rehomeOf(home: LeftHome, rehome: Rehome | undefined): Rehome | undefined {
  const { refuse } = home;
  return refuse ? () => Promise.reject(refuse()) : rehome;
}

/** What the retry reads of a tenant's manager (a `SchemaDb`). */
export interface TenantHome {
  readonly pooledTenantId: string | undefined;
  readonly schema: string | null;
  readonly inTransaction: boolean;
}

/** The manager of the tenant's current home, re-read from the registry (see `QueryEnvironment.rehome`). */
export type Rehome = (db: TenantHome) => Promise<TenantHome | undefined>;

/**
 * `err` from a statement of `db`: when it is the moved SQLSTATE and the registry gives the
 * tenant a new home, the statement is run there (`retry`); in a transaction it becomes a
 * `TenantMovedError`. Any other error is rethrown as it is.
 */
export async function onNewHome<T, D extends TenantHome>(
  rehome: Rehome,
  db: D,
  err: unknown,
  retry: (next: D) => Promise<T>,
): Promise<T> {
  if ((err as { code?: unknown } | null)?.code !== TENANT_MOVED_SQLSTATE) throw err;
  const tenantId = db.pooledTenantId ?? db.schema ?? '';
  if (db.inTransaction) throw new TenantMovedError(tenantId, { cause: err });
  const next = (await rehome(db)) as D | undefined;
  if (!next || next === db) throw new TenantMovedError(tenantId, { cause: err });
  return retry(next);
}

/**
 * A transaction (`run`) of a tenant's manager `db` that failed because the tenant moved
 * (`TenantMovedError`: nothing of it was kept) runs again on the new home while `retries` last,
 * as a serialization failure does. Transactions joined to an outer one leave it to the outer one.
 */
export function transactionOnNewHome<T, D extends TenantHome>(
  run: Promise<T>,
  rehome: Rehome | undefined,
  db: D,
  retries: number | undefined,
  again: (next: D, retries: number) => Promise<T>,
): Promise<T> {
  if (!rehome || !retries) return run;
  return run.catch(async (err: unknown) => {
    if (!(err instanceof TenantMovedError)) throw err;
    const next = (await rehome(db)) as D | undefined;
    if (!next || next === db) throw err;
    return again(next, retries - 1);
  });
}

/**
 * `run` on the tenant's new home, for a manager the registry retired (`SchemaDb.retire()`):
 * outside a transaction the tenant's current manager runs it; in one, `TenantMovedError`.
 */
export function onLeftHome<T, D extends TenantHome>(
  rehome: Rehome | undefined,
  db: D,
  run: (next: D) => Promise<T>,
): Promise<T> {
  return rehome ? onNewHome(rehome, db, leftHome(db), run) : Promise.reject(leftHome(db));
}

/** {@link onLeftHome} for a row stream: the new home's rows, from the first. */
export async function* rowsOnLeftHome<T, D extends TenantHome>(
  rehome: Rehome | undefined,
  db: D,
  rows: (next: D) => AsyncGenerator<T, void, undefined>,
): AsyncGenerator<T, void, undefined> {
  yield* rows(await onLeftHome(rehome, db, async (next) => next));
}
