/**
 * Base class of every error this module throws. Catch it to handle all of them at once;
 * each subclass names one failure and its message says what to do about it.
 */
export class PgTenancyError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * A configuration value is invalid (an option out of range, a malformed schema name, ...).
 * Thrown while the module is being set up, before any connection is opened.
 */
export class InvalidOptionsError extends PgTenancyError {}

/**
 * A schema, table or other identifier is not acceptable. Identifiers must be 1–63 bytes,
 * start with a letter or underscore and contain only letters, digits, `_` or `$`.
 */
export class InvalidIdentifierError extends PgTenancyError {
  constructor(
    /** What the identifier was meant to name, e.g. `'schema'` or `'table'`. */
    readonly kind: string,
    /** The rejected value. */
    readonly value: string,
    reason: string,
  ) {
    super(`Invalid ${kind} name ${JSON.stringify(value)}: ${reason}.`);
  }
}

/**
 * A SQL template holds a placeholder that cannot be expanded: an unknown name such as
 * `{{table.x}}`, an unterminated `{{tables.x`, or `{{schema}}` on a manager without a schema.
 * Thrown before any SQL is sent.
 */
export class SqlTemplateError extends PgTenancyError {}

/** @deprecated Use SqlTemplateError; removed in 0.3. */
export const TemplateError = SqlTemplateError;
/** @deprecated Use SqlTemplateError; removed in 0.3. */
export type TemplateError = SqlTemplateError;

/**
 * No pooled connection became free within `pool.acquireTimeoutMs`. The pool is exhausted:
 * shorten transactions, raise `pool.max` (within the server's `max_connections`) or shed load.
 */
export class PoolAcquireTimeoutError extends PgTenancyError {
  constructor(
    /** How long the caller waited, in milliseconds. */
    readonly timeoutMs: number,
    /** Pool size limit at the time. */
    readonly max: number,
    options?: { cause?: unknown },
  ) {
    super(
      `Timed out after ${timeoutMs} ms waiting for a free connection (pool max ${max}). ` +
        'The pool is exhausted: shorten transactions, raise pool.max, or reduce concurrency.',
      options,
    );
  }
}

/**
 * A new connection to PostgreSQL could not be established (server down, wrong host or
 * credentials, connect timeout). The message names the target without the password.
 */
export class DatabaseConnectionError extends PgTenancyError {}

/**
 * A transaction-bound manager was used after its transaction ended. Keep all work of a
 * transaction inside the callback passed to `transaction()`, and `await` it there.
 */
export class TransactionClosedError extends PgTenancyError {
  constructor() {
    super(
      'This manager belongs to a transaction that has already finished. ' +
        'Run queries inside the transaction callback and await them before it returns.',
    );
  }
}

/** The pool has been closed (the application is shutting down); no new work is accepted. */
export class PoolClosedError extends PgTenancyError {
  constructor() {
    super(
      'The database pool is closed because the application is shutting down; retry on another instance.',
    );
  }
}

/**
 * The transaction was already aborted when it tried to commit, so PostgreSQL rolled it back:
 * a statement inside failed and the error was caught without rethrowing. Nothing was saved.
 * Let errors propagate out of the callback, or catch them inside a nested `transaction()`
 * (a savepoint) so the outer transaction stays usable.
 */
export class TransactionAbortedError extends PgTenancyError {
  constructor() {
    super(
      'COMMIT was answered with ROLLBACK: a statement in this transaction failed and its error was caught, so nothing was saved. ' +
        'Rethrow the error, or wrap the statement that may fail in a nested transaction() (a savepoint).',
    );
  }
}

/**
 * Two nested transactions (savepoints) were opened side by side on one transaction, e.g. with
 * `Promise.all`. Savepoints nest but cannot interleave on one connection: run them one after
 * the other.
 */
export class ConcurrentSavepointError extends PgTenancyError {
  constructor() {
    super(
      'A nested transaction is already running on this transaction: savepoints on one connection cannot run concurrently. ' +
        'Await each nested transaction() before starting the next.',
    );
  }
}

/**
 * A query was sent on a transaction's manager while a nested transaction (savepoint) of it was
 * open, e.g. `Promise.all([tx.transaction(step), tx.execute(sql)])`. On one connection that
 * statement would run inside the savepoint, and the savepoint's rollback would silently undo a
 * write reported as done, so it is refused instead. Await the nested transaction first, or run
 * the statement through the savepoint's own manager.
 */
export class SavepointActiveError extends PgTenancyError {
  constructor() {
    super(
      'A nested transaction (savepoint) is open on this transaction, and this query was sent on the outer manager: it would run inside the savepoint and be undone with it. ' +
        'Await the nested transaction() before querying the outer manager, or use the manager the nested callback receives.',
    );
  }
}

/**
 * The application is shutting down: new work is refused while in-flight work finishes. HTTP 503
 * (with `Retry-After` through `DatabaseExceptionFilter`): the client should retry, and will reach
 * another instance.
 */
export class DatabaseShuttingDownError extends PgTenancyError {
  /** The HTTP status this error maps to. */
  readonly status = 503;
  constructor() {
    super('The service is shutting down and accepts no new database work; retry the request.');
  }
}

/**
 * A call that requires a running transaction (`propagation: 'mandatory'`) was made outside one.
 * Call it from inside `db.transaction()` or a `@Transactional()` method, or use the default
 * propagation (`'join'`), which starts a transaction when there is none.
 */
export class TransactionRequiredError extends PgTenancyError {
  constructor() {
    super(
      "This call needs a transaction (propagation 'mandatory') and none is running: call it from inside db.transaction() or a @Transactional() method.",
    );
  }
}

/**
 * A call that must run outside any transaction (`propagation: 'never'`) was made inside one.
 * Call it outside the transaction, or use `propagation: 'not-supported'` to suspend the
 * transaction for the call.
 */
export class TransactionNotAllowedError extends PgTenancyError {
  constructor() {
    super(
      "This call must not run in a transaction (propagation 'never') but one is running: call it outside the transaction, or use propagation 'not-supported' to run it outside while the transaction waits.",
    );
  }
}

/**
 * A `@Transactional()` method had to start a transaction but its object was not bound to a
 * database: it is not a provider or controller of an application that imports
 * `DatabaseModule.forRoot()` (objects created with `new`, request-scoped or transient providers
 * are not bound), or it was called before the module initialised.
 */
export class TransactionalHostMissingError extends PgTenancyError {
  constructor(
    /** `ClassName.method` of the decorated method. */
    readonly method: string,
  ) {
    super(
      `@Transactional() method ${method} cannot start a transaction: its object is not a singleton provider or controller of an application that imports DatabaseModule.forRoot(), or the application has not been initialised yet (call app.init()). ` +
        'Make the class a provider, or call it inside db.transaction().',
    );
  }
}

/**
 * A prepared statement kept by `preparedStatements` was invalidated inside a transaction:
 * PostgreSQL answered `0A000` ("cached plan must not change result type", after a schema
 * change such as `ALTER TABLE … ADD COLUMN` under a `SELECT *`) or `26000` (the statement is
 * gone). The error has already aborted the transaction, so it cannot be hidden there; the
 * statement was dropped, and running the transaction again succeeds. `transaction({ retries })`
 * does that by itself. Outside transactions the query is prepared again and run once more; only
 * when that second attempt is invalid too does this surface (`afterRetry`), never a third run.
 */
export class PreparedStatementStaleError extends PgTenancyError {
  /** The SQLSTATE PostgreSQL answered: `'0A000'` or `'26000'`. */
  readonly code: string;
  /** `true` outside a transaction: the statement was prepared again and was still invalid. */
  readonly afterRetry: boolean;
  constructor(cause: Error, options: { afterRetry?: boolean } = {}) {
    const code = (cause as Error & { code?: string }).code ?? '';
    const afterRetry = options.afterRetry ?? false;
    super(
      afterRetry
        ? `A cached prepared statement was still invalid after it was prepared again and run once more (${code}: ${cause.message}); it is not retried again. ` +
            'It was dropped from the cache: the schema is probably changing under it; run the query again once the change is done.'
        : `A cached prepared statement became invalid inside a transaction (${code}: ${cause.message}), which PostgreSQL has aborted. ` +
            'It was dropped from the cache: run the transaction again (transaction({ retries }) does), or set preparedStatements.inTransactions to false.',
      { cause },
    );
    this.code = code;
    this.afterRetry = afterRetry;
    this.code = code;
  }
}

/**
 * A statement of tenant `tenantId` reached its old home after a move to another tier flipped it
 * (SQLSTATE `PTM01`, raised by the move's change capture), inside a transaction with no `retries`
 * left (statements outside a transaction, and transactions with `retries`, are re-run on the new
 * home transparently). Nothing of the transaction was kept: run it again, and it is served from the
 * tenant's new home.
 */
export class TenantMovedError extends PgTenancyError {
  constructor(
    /** The tenant that moved. */
    readonly tenantId: string,
    options?: { cause?: unknown },
  ) {
    super(
      `Tenant "${tenantId}" moved to another tier while this transaction ran on its old home; nothing of it was kept. Run it again: it is served from the new home now.`,
      options,
    );
  }
}
