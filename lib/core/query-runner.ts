import type pg from 'pg';
import { TransactionClosedError } from '../errors.js';
import { isBrokenConnectionError, toAcquireError } from '../pool/connection-errors.js';
import type { QueryEnvironment } from './query-environment.js';

/** Bind parameters, as `pg` takes them. */
export type QueryParams = readonly unknown[];

/**
 * Where a manager's queries go: the shared pool (a client per query) or one client held by a
 * transaction. Internal: user code only sees `SchemaDb`.
 */
export interface QueryRunner {
  query<R extends pg.QueryResultRow>(
    text: string,
    params?: QueryParams,
  ): Promise<pg.QueryResult<R>>;
  /** The transaction client, or `null` when queries go to the pool. */
  readonly client: pg.PoolClient | null;
  readonly env: QueryEnvironment;
}

/**
 * Checks a client out for each query and always gives it back: healthy after SQL errors,
 * discarded (released with the error) only when the connection itself failed.
 */
export class PoolQueryRunner implements QueryRunner {
  readonly client = null;
  constructor(readonly env: QueryEnvironment) {}

  async query<R extends pg.QueryResultRow>(
    text: string,
    params?: QueryParams,
  ): Promise<pg.QueryResult<R>> {
    const lease = await checkout(this.env);
    try {
      const result = await lease.client.query<R>(text, params as unknown[] | undefined);
      lease.release();
      return result;
    } catch (err) {
      lease.release(isBrokenConnectionError(err) ? (err as Error) : undefined);
      throw err;
    }
  }
}

/**
 * Runs every query on one checked-out client, until the transaction (or savepoint) that owns it
 * ends. A savepoint's runner has the enclosing one as `parent`, so closing a transaction closes
 * every manager handed out inside it, however deeply nested.
 */
export class ClientQueryRunner implements QueryRunner {
  #open = true;
  /** Set while a savepoint opened on this runner is running. */
  savepointActive = false;

  constructor(
    readonly env: QueryEnvironment,
    readonly client: pg.PoolClient,
    readonly parent?: ClientQueryRunner,
  ) {}

  get isOpen(): boolean {
    return this.#open && (this.parent?.isOpen ?? true);
  }

  query<R extends pg.QueryResultRow>(
    text: string,
    params?: QueryParams,
  ): Promise<pg.QueryResult<R>> {
    if (!this.isOpen) return Promise.reject(new TransactionClosedError());
    return this.client.query<R>(text, params as unknown[] | undefined);
  }

  close(): void {
    this.#open = false;
  }
}

/** A checked-out client and the one way to give it back. */
export interface Lease {
  readonly client: pg.PoolClient;
  /** The connection error seen while checked out, if any: the client must then be discarded. */
  readonly brokenBy: Error | undefined;
  /** Returns the client to the pool, or discards it when `err` (or `brokenBy`) is set. Idempotent. */
  release(err?: Error): void;
}

/**
 * `pool.connect()` with this module's typed errors, and an `error` listener for as long as the
 * client is checked out. The pool listens only to idle clients: without this, a backend killed
 * between two queries of a transaction (`pg_terminate_backend`, a server restart,
 * `idle_in_transaction_session_timeout`) emits an unhandled `error` and crashes the process.
 */
export async function checkout(env: QueryEnvironment): Promise<Lease> {
  const { pool, drain } = env;
  drain?.assertCanCheckout();
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw toAcquireError(err, pool.options);
  }
  let brokenBy: Error | undefined;
  let released = false;
  const onError = (err: Error) => {
    brokenBy ??= err;
  };
  client.on('error', onError);
  const lease: Lease = {
    client,
    get brokenBy() {
      return brokenBy;
    },
    release(err?: Error) {
      if (released) return;
      released = true;
      client.off('error', onError);
      client.release(err ?? brokenBy);
      drain?.untrack(lease);
    },
  };
  drain?.track(lease);
  return lease;
}
