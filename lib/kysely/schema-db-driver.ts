import {
  CompiledQuery,
  type ConnectionProvider,
  type DatabaseConnection,
  type Driver,
  type QueryResult,
  type TransactionSettings,
} from 'kysely';
import type pg from 'pg';
import {
  innermostTransaction,
  runWithPendingTransaction,
  type AmbientTransaction,
} from '../core/transaction/ambient-transaction.js';
import { quoteIdentifier } from '../shared/identifiers.js';
import type { SchemaDb } from '../core/schema-db.js';
import type { TransactionOptions } from '../core/transaction/transaction-options.js';
import { InvalidOptionsError } from '../shared/errors.js';
import { KyselyStreamNotSupportedError } from './kysely.errors.js';

/** Rejects the parked callback so that `SchemaDb.transaction()` rolls back; never surfaces. */
class RollbackRequested extends Error {}

/** A transaction begun for Kysely: a `SchemaDb.transaction()` call parked until Kysely decides. */
interface ParkedTransaction {
  /** The transaction's own manager. */
  readonly db: SchemaDb;
  /** What managers in Kysely's callback flow join: the transaction, or the savepoint. */
  readonly ambient: AmbientTransaction | undefined;
  /** Lets the parked callback return (commit) or throw (roll back). */
  readonly settle: (commit: boolean) => void;
}

/**
 * What Kysely sees as a connection. It holds no `pg` client: a query goes to the manager, which
 * borrows a pooled connection for it or runs it in the flow's transaction. Between Kysely's
 * `beginTransaction` and its commit or rollback, it holds a parked `SchemaDb.transaction()`, and
 * the queries Kysely sends on it run in that transaction.
 */
class SchemaDbConnection implements DatabaseConnection {
  readonly #db: SchemaDb;
  #tx: ParkedTransaction | undefined;
  /** Settles when the parked `SchemaDb.transaction()` has committed or rolled back. */
  #done: Promise<unknown> | undefined;

  constructor(db: SchemaDb) {
    this.#db = db;
  }

  /** The transaction begun on this connection, for managers in the flow of Kysely's callback. */
  get ambient(): AmbientTransaction | undefined {
    return this.#tx?.ambient;
  }

  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    const db = this.#tx?.db ?? this.#db;
    const result = await db.query<R & pg.QueryResultRow>(compiled.sql, compiled.parameters);
    const { command, rowCount, rows } = result;
    const affected =
      command === 'INSERT' || command === 'UPDATE' || command === 'DELETE' || command === 'MERGE';
    return affected ? { numAffectedRows: BigInt(rowCount ?? 0), rows } : { rows };
  }

  // eslint-disable-next-line require-yield -- refuses before the first row
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new KyselyStreamNotSupportedError();
  }

  async begin(settings: TransactionSettings): Promise<void> {
    const options = transactionOptions(settings);
    let opened!: () => void;
    const open = new Promise<void>((resolve) => (opened = resolve));
    let settle!: (commit: boolean) => void;
    const decided = new Promise<boolean>((resolve) => (settle = resolve));
    // Begun here, decided later: Kysely begins, runs its callback, then commits or rolls back
    // through the driver, so the callback that SchemaDb.transaction() wants waits for it. When
    // it joins a running transaction, the callback runs before transaction() returns.
    const done = this.#db.transaction(async (tx) => {
      this.#tx = { db: tx, ambient: innermostTransaction(), settle };
      opened();
      if (!(await decided)) throw new RollbackRequested();
    }, options);
    // Observed by commit()/rollback(), or by the race below when BEGIN itself fails.
    done.catch(() => undefined);
    this.#done = done;
    await Promise.race([open, done]);
  }

  async commit(): Promise<void> {
    const [tx, done] = this.#end();
    if (tx === undefined) return;
    tx.settle(true);
    await done;
  }

  async rollback(): Promise<void> {
    // After a failed commit Kysely rolls back too: the transaction has already ended then.
    const [tx, done] = this.#end();
    if (tx === undefined) return;
    tx.settle(false);
    await done?.catch((err: unknown) => {
      if (!(err instanceof RollbackRequested)) throw err;
    });
  }

  #end(): [ParkedTransaction | undefined, Promise<unknown> | undefined] {
    const ended = [this.#tx, this.#done] as const;
    this.#tx = undefined;
    this.#done = undefined;
    return [...ended];
  }
}

/**
 * Hands Kysely a fresh connection per query or transaction, and runs Kysely's work in a flow
 * where that connection's transaction, once begun, is the ambient one: the managers that the
 * callback of `kysely.transaction().execute()` uses (other services' `@InjectTenantDb()`,
 * `@Transactional()` methods) join it, as they join `db.transaction()`.
 */
export class SchemaDbConnectionProvider implements ConnectionProvider {
  readonly #db: SchemaDb;

  constructor(db: SchemaDb) {
    this.#db = db;
  }

  provideConnection<T>(consumer: (connection: DatabaseConnection) => Promise<T>): Promise<T> {
    const connection = new SchemaDbConnection(this.#db);
    return runWithPendingTransaction(
      () => connection.ambient,
      () => consumer(connection),
    );
  }
}

/**
 * Kysely's transaction hooks, on {@link SchemaDbConnection}s. Opens nothing and ends nothing:
 * the module owns the pool, so `kysely.destroy()` leaves it open.
 */
export class SchemaDbDriver implements Driver {
  readonly #db: SchemaDb;

  constructor(db: SchemaDb) {
    this.#db = db;
  }

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    return new SchemaDbConnection(this.#db);
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return (connection as SchemaDbConnection).begin(settings);
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return (connection as SchemaDbConnection).commit();
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return (connection as SchemaDbConnection).rollback();
  }

  async savepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`SAVEPOINT ${quoteIdentifier(name)}`));
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(
      CompiledQuery.raw(`ROLLBACK TO SAVEPOINT ${quoteIdentifier(name)}`),
    );
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`RELEASE SAVEPOINT ${quoteIdentifier(name)}`));
  }

  async releaseConnection(): Promise<void> {}

  async destroy(): Promise<void> {}
}

/** Kysely's transaction settings as `SchemaDb.transaction()` options. */
function transactionOptions({
  isolationLevel,
  accessMode,
}: TransactionSettings): TransactionOptions {
  const options: TransactionOptions = {};
  if (accessMode === 'read only') options.readOnly = true;
  switch (isolationLevel) {
    case undefined:
      break;
    case 'read uncommitted': // PostgreSQL runs it as read committed
    case 'read committed':
      options.isolationLevel = 'read committed';
      break;
    case 'repeatable read':
    case 'serializable':
      options.isolationLevel = isolationLevel;
      break;
    default:
      throw new InvalidOptionsError(
        `PostgreSQL has no isolation level '${isolationLevel}': use 'read committed', 'repeatable read' or 'serializable'.`,
      );
  }
  return options;
}
