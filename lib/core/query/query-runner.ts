import type pg from 'pg';
import { SavepointActiveError, TransactionClosedError } from '../../shared/errors.js';
import { isBrokenConnectionError, toAcquireError } from '../../connection/connection-errors.js';
import type { ReleaseSlot } from '../../connection/tenant-fair-share.js';
import { connectFor, connectForAsync } from '../../connection/pool-affinity.js';
import { brokenBy, watch } from '../../connection/watched-client.js';
import { sendUnnamed, type QueryPrefix } from '../../connection/pg-query.js';
import { NO_SCOPE, scopeFirst, type RowScope } from '../../connection/row-scope.js';
import type { QueryEnvironment } from './query-environment.js';
import type { IsolationLevel } from '../transaction/transaction-options.js';

/** Bind parameters, as `pg` takes them. */
export type QueryParams = readonly unknown[];

/**
 * Where a manager's queries go: the shared pool (a client per query) or one client held by a
 * transaction. Internal: user code only sees `SchemaDb`.
 */
export interface QueryRunner {
  /**
   * `arrayRows`: rows as arrays (`pg`'s `rowMode: 'array'`), so columns are read by position.
   * `scope`: a pooled tenant's role and id, set for the statement's transaction only.
   */
  query<R extends pg.QueryResultRow>(
    text: string,
    params?: QueryParams,
    arrayRows?: boolean,
    scope?: RowScope,
  ): Promise<pg.QueryResult<R>>;
  /** The transaction client, or `null` when queries go to the pool. */
  readonly client: pg.PoolClient | null;
  readonly env: QueryEnvironment;
  /** The schema a pool runner's checkouts are for (tenant affinity); none for unqualified work. */
  readonly key?: string;
}

/**
 * Checks a client out for each query and always gives it back: healthy after SQL errors,
 * discarded (released with the error) only when the connection itself failed.
 */
export class PoolQueryRunner implements QueryRunner {
  readonly client = null;
  constructor(
    readonly env: QueryEnvironment,
    /** The schema its checkouts are for: they prefer the schema's connections (`pool.affinity`). */
    readonly key?: string,
  ) {}

  // The hot path: one promise and pg's callback API, the way pool.query() works, but with the
  // explicit release that keeps healthy clients after SQL errors (pool.query discards them).
  query<R extends pg.QueryResultRow>(
    text: string,
    params?: QueryParams,
    arrayRows?: boolean,
    scope?: RowScope,
    /** The fair-share slot already taken for this query (internal: set by the call below). */
    releaseSlot?: ReleaseSlot,
  ): Promise<pg.QueryResult<R>> {
    const { pool, drain, fairShare, statements } = this.env;
    if (fairShare !== undefined && releaseSlot === undefined) {
      let slot: ReturnType<typeof fairShare.acquire>;
      try {
        drain?.assertCanCheckout();
        slot = fairShare.acquire();
      } catch (err) {
        return Promise.reject(err);
      }
      if (slot instanceof Promise) {
        return slot.then((release) => this.query<R>(text, params, arrayRows, scope, release));
      }
      releaseSlot = slot;
    }
    return new Promise((resolve, reject) => {
      try {
        drain?.assertCanCheckout();
      } catch (err) {
        releaseSlot?.();
        reject(err);
        return;
      }
      connectFor(pool, this.key, (connectErr, client, done) => {
        if (connectErr || !client) {
          releaseSlot?.();
          reject(toAcquireError(connectErr, pool.options));
          return;
        }
        watch(client);
        let released = false;
        const lease = {
          client,
          release(err?: Error) {
            if (released) return;
            released = true;
            done(err ?? brokenBy(client));
            releaseSlot?.();
            drain?.untrack(lease);
          },
        };
        drain?.track(lease);
        const settle = (queryErr: Error | null, result: pg.QueryResult<R>) => {
          lease.release(queryErr && isBrokenConnectionError(queryErr) ? queryErr : undefined);
          if (queryErr) reject(queryErr);
          else resolve(result);
        };
        const prefix = scope && prefixFor(scope, statements?.prepares === true);
        if (statements) {
          statements.send<R>(client, text, params, arrayRows, settle, prefix);
        } else if (prefix) {
          sendUnnamed<R>(client, text, params ?? [], arrayRows, settle, prefix);
        } else if (arrayRows) {
          client.query<R>(
            { text, values: (params ?? []) as unknown[], rowMode: 'array' } as pg.QueryConfig,
            settle,
          );
        } else {
          client.query<R>(text, (params ?? []) as unknown[], settle);
        }
      });
    });
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
  /** Set once a pooled tenant's scope was set in this transaction (on the outermost runner). */
  #scoped = false;

  constructor(
    readonly env: QueryEnvironment,
    readonly client: pg.PoolClient,
    readonly parent?: ClientQueryRunner,
    /** The isolation level the transaction was begun with (`undefined`: the server default). */
    readonly isolationLevel: IsolationLevel | undefined = parent?.isolationLevel,
  ) {}

  /** The transaction's own runner (savepoints' runners have it as an ancestor). */
  get root(): ClientQueryRunner {
    return this.parent?.root ?? this;
  }

  get isOpen(): boolean {
    return this.#open && (this.parent?.isOpen ?? true);
  }

  query<R extends pg.QueryResultRow>(
    text: string,
    params?: QueryParams,
    arrayRows?: boolean,
    scope?: RowScope,
  ): Promise<pg.QueryResult<R>> {
    // Refused rather than queued behind the savepoint: queued, a caller that awaits the outer
    // manager inside the savepoint's callback would wait for itself forever.
    if (this.savepointActive) return Promise.reject(new SavepointActiveError());
    const prefix = this.#prefixFor(scope);
    const { statements } = this.env;
    if (statements || prefix) {
      if (!this.isOpen) return Promise.reject(new TransactionClosedError());
      return new Promise((resolve, reject) => {
        const settle = (err: Error | null, result: pg.QueryResult<R>) =>
          err ? reject(err) : resolve(result);
        if (statements) statements.send<R>(this.client, text, params, arrayRows, settle, prefix);
        else sendUnnamed<R>(this.client, text, params ?? [], arrayRows, settle, prefix);
      });
    }
    if (arrayRows) {
      if (!this.isOpen) return Promise.reject(new TransactionClosedError());
      return this.client.query<R>({
        text,
        values: params as unknown[] | undefined,
        rowMode: 'array',
      } as pg.QueryConfig);
    }
    return this.control(text, params);
  }

  /** Sends `text` even while a savepoint is open: the savepoint's own SAVEPOINT/RELEASE/ROLLBACK TO. */
  control<R extends pg.QueryResultRow>(
    text: string,
    params?: QueryParams,
  ): Promise<pg.QueryResult<R>> {
    if (!this.isOpen) return Promise.reject(new TransactionClosedError());
    return this.client.query<R>(text, params as unknown[] | undefined);
  }

  close(): void {
    this.#open = false;
  }

  /**
   * A pooled tenant's statement sets its scope first, every time (a statement of the app's may
   * have changed the role since). Once one has, a statement of an unscoped manager in the same
   * transaction undoes it first, so it runs as the login role again.
   */
  #prefixFor(scope: RowScope | undefined): QueryPrefix | undefined {
    const root = this.root;
    const named = this.env.statements?.prepares === true;
    if (scope) {
      root.#scoped = true;
      return prefixFor(scope, named);
    }
    return root.#scoped ? prefixFor(NO_SCOPE, named) : undefined;
  }
}

/** Sets `scope` ahead of a query (see `scopeFirst`); `named` when statements are prepared. */
function prefixFor(scope: RowScope, named: boolean): QueryPrefix {
  return (query) => scopeFirst(query, scope, named);
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
 * `pool.connect()` with this module's typed errors, a watched client and shutdown tracking;
 * `key` is the schema the work is for (tenant affinity).
 */
export async function checkout(env: QueryEnvironment, key?: string): Promise<Lease> {
  const { pool, drain, fairShare } = env;
  drain?.assertCanCheckout();
  const releaseSlot = await fairShare?.acquire();
  let client: pg.PoolClient;
  try {
    client = await connectForAsync(pool, key);
  } catch (err) {
    releaseSlot?.();
    throw toAcquireError(err, pool.options);
  }
  watch(client);
  let released = false;
  // A callback that never settles never releases its lease; once the server has ended the
  // session (idle_in_transaction_session_timeout, pg_terminate_backend, a restart) the
  // connection is useless anyway, so give its pool slot back then instead of never.
  const onGone = (err?: Error) =>
    lease.release(err ?? brokenBy(client) ?? new Error('The connection was closed'));
  const lease: Lease = {
    client,
    get brokenBy() {
      return brokenBy(client);
    },
    release(err?: Error) {
      if (released) return;
      released = true;
      client.off('error', onGone);
      client.off('end', onGone);
      client.release(err ?? brokenBy(client));
      releaseSlot?.();
      drain?.untrack(lease);
    },
  };
  client.on('error', onGone);
  client.on('end', onGone);
  drain?.track(lease);
  return lease;
}
