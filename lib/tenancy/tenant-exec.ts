// SQL run in a tenant as one transaction (`TenantService.exec()`, `tenants exec`).
import type { SchemaDb } from '../core/schema-db.js';
import { findTransactionControl } from '../core/sql/transaction-control.js';
import { PgTenancyError } from '../shared/errors.js';
import { NO_SCOPE, scopeStatement } from '../connection/row-scope.js';

/** What `TenantService.exec()` returns: the last statement's result. */
export interface TenantExecResult {
  /** Rows the last statement returned or changed (`0` when it reports none). */
  readonly rowCount: number;
  /** Rows the last statement returned. */
  readonly rows: Record<string, unknown>[];
}

/**
 * SQL given to `TenantService.exec()` or `tenants exec` controls the transaction itself
 * (`BEGIN`, `COMMIT`, `ROLLBACK`, `SAVEPOINT`, …) at its top level. The text runs in one
 * transaction per tenant so that a tenant where it fails keeps nothing of it; a `COMMIT` of its
 * own would keep the part before it while the tenant is reported failed. Refused before any
 * tenant is touched.
 */
export class TenantExecTransactionControlError extends PgTenancyError {
  constructor(
    /** The statement's keywords, e.g. `COMMIT` or `START TRANSACTION`. */
    readonly statement: string,
    /** 1-based line of the statement in the text. */
    readonly line: number,
    /** Where the text came from (a file path, `--sql`), when known. */
    readonly source?: string,
  ) {
    super(
      `The SQL to run in each tenant${source === undefined ? '' : ` (${source})`} runs ${statement} at line ${line}. ` +
        'It already runs in one transaction per tenant, so that a tenant where it fails keeps nothing of it; ' +
        `its own ${statement} would keep or drop part of it. Remove the statement, or run the parts as separate execs. ` +
        'No tenant was touched.',
    );
  }
}

/**
 * Refuses `sql` that begins, ends or splits a transaction at its top level.
 * @throws TenantExecTransactionControlError
 */
export function assertNoTransactionControl(sql: string, source?: string): void {
  const found = findTransactionControl(sql);
  if (found) throw new TenantExecTransactionControlError(found.statement, found.line, source);
}

/**
 * Runs `sql` (one or more statements, with placeholders) in one transaction on `db`; returns the
 * last statement's result, and leaves no session setting behind on the connection. Check the text
 * with {@link assertNoTransactionControl} first.
 *
 * A pooled tenant's manager (`db.pooledTenantId` set) needs `pooledRole`, the pooled tier's role:
 * the transaction's first statement sets the tenant's scope (that role, that tenant) for the
 * transaction, then the text runs as written (several statements in one call), held by
 * row-level security like any statement of the tenant's; the login role is back at its end.
 */
export async function execInTransaction(
  db: SchemaDb,
  sql: string,
  pooledRole?: string,
): Promise<TenantExecResult> {
  const tenantId = db.pooledTenantId;
  // A pooled manager sends each statement on its own (extended protocol), which refuses text of
  // several statements: its scope is set once instead, by an unscoped manager of the same schema.
  const on = tenantId === undefined ? db : db.withSchema(db.schema);
  const scope =
    tenantId === undefined ? undefined : scopeStatement({ role: pooledRole!, tenantId });
  const unscope = scopeStatement(NO_SCOPE);
  // Without parameters, several statements may run in one call; pg then answers with one
  // result per statement, and the last one is reported.
  // A session-level SET (or set_config(…, false)) in the text would outlive the commit on a pooled
  // connection that serves other tenants next: RESET ALL, committed with the text, undoes it.
  const raw: unknown = await on.transaction(async (tx) => {
    if (scope) await tx.query(scope.text, scope.values);
    const result: unknown = await tx.query(sql);
    await tx.query('RESET ALL');
    // Joined to a caller's transaction, what follows there runs as the login role again.
    if (scope) await tx.query(unscope.text, unscope.values);
    return result;
  });
  const last = (Array.isArray(raw) ? raw.at(-1) : raw) as
    { rowCount: number | null; rows: Record<string, unknown>[] } | undefined;
  return { rowCount: last?.rowCount ?? 0, rows: last?.rows ?? [] };
}
