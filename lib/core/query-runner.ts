import type pg from 'pg';
import { TransactionClosedError } from '../errors.js';
import { isBrokenConnectionError, toAcquireError } from '../pool/connection-errors.js';

/** Bind parameters, as `pg` takes them. */
export type QueryParams = readonly unknown[];

/**
 * Where a manager's queries go: the shared pool (a client per query) or one client held by a
 * transaction. Internal: user code only sees `SchemaDb`.
 */
export interface QueryRunner {
  query<R extends pg.QueryResultRow>(text: string, params?: QueryParams): Promise<pg.QueryResult<R>>;
  /** The transaction client, or `null` when queries go to the pool. */
  readonly client: pg.PoolClient | null;
  readonly pool: pg.Pool;
}

/**
 * Checks a client out for each query and always gives it back: healthy after SQL errors,
 * discarded (released with the error) only when the connection itself failed.
 */
export class PoolQueryRunner implements QueryRunner {
  readonly client = null;
  constructor(readonly pool: pg.Pool) {}

  async query<R extends pg.QueryResultRow>(
    text: string,
    params?: QueryParams,
  ): Promise<pg.QueryResult<R>> {
    const client = await acquireClient(this.pool);
    try {
      const result = await client.query<R>(text, params as unknown[] | undefined);
      client.release();
      return result;
    } catch (err) {
      client.release(isBrokenConnectionError(err) ? (err as Error) : undefined);
      throw err;
    }
  }
}

/** Runs every query on one checked-out client, until the transaction that owns it ends. */
export class ClientQueryRunner implements QueryRunner {
  #open = true;
  constructor(
    readonly pool: pg.Pool,
    readonly client: pg.PoolClient,
  ) {}

  query<R extends pg.QueryResultRow>(text: string, params?: QueryParams): Promise<pg.QueryResult<R>> {
    if (!this.#open) return Promise.reject(new TransactionClosedError());
    return this.client.query<R>(text, params as unknown[] | undefined);
  }

  close(): void {
    this.#open = false;
  }
}

/** `pool.connect()` with this module's typed errors. */
export async function acquireClient(pool: pg.Pool): Promise<pg.PoolClient> {
  try {
    return await pool.connect();
  } catch (err) {
    throw toAcquireError(err, pool);
  }
}
