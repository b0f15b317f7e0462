import pg from 'pg';
import {
  ConcurrentSavepointError,
  InvalidOptionsError,
  TransactionAbortedError,
} from '../errors.js';
import { isBrokenConnectionError } from '../pool/connection-errors.js';
import {
  checkout,
  ClientQueryRunner,
  PoolQueryRunner,
  type QueryParams,
  type QueryRunner,
} from './query-runner.js';
import type { QueryEnvironment } from './query-environment.js';
import { SqlTemplate, TemplateCache } from './sql-template.js';

/** Isolation levels accepted by {@link SchemaDb.transaction}. */
export type IsolationLevel = 'read committed' | 'repeatable read' | 'serializable';

/** Options of {@link SchemaDb.transaction}. */
export interface TransactionOptions {
  /**
   * Isolation level of the transaction.
   * Default: the server's `default_transaction_isolation` (normally `read committed`).
   */
  isolationLevel?: IsolationLevel;
  /** Start a `READ ONLY` transaction. Default: `false`. */
  readOnly?: boolean;
  /**
   * How many times to re-run the whole callback after a serialization failure (SQLSTATE 40001)
   * or a deadlock (40P01), with jittered exponential backoff. Other errors never retry, so the
   * callback must be safe to run again (no side effects outside the database).
   * Default: `0`.
   */
  retries?: number;
}

const ISOLATION_SQL: Record<IsolationLevel, string> = {
  'read committed': 'READ COMMITTED',
  'repeatable read': 'REPEATABLE READ',
  serializable: 'SERIALIZABLE',
};
const RETRYABLE_SQLSTATES = new Set(['40001', '40P01']);
const BACKOFF_BASE_MS = 5;
const BACKOFF_CAP_MS = 500;

/**
 * The manager for one schema over the shared pool. It qualifies table names in SQL templates
 * (`{{tables.orders}}` becomes `"orders"."orders"`), so a connection never carries schema state
 * and any pooled connection can serve any schema.
 *
 * Inject one with `@InjectSchemaDb('orders')`, or the current tenant's with `@InjectTenantDb()`.
 *
 * @example
 * const order = await db.fetchOne<Order>(
 *   'INSERT INTO {{tables.orders}} (user_id) VALUES ($1) RETURNING *', [userId]);
 */
export class SchemaDb {
  readonly #runner: QueryRunner;
  readonly #template: SqlTemplate;
  readonly #savepoints: { next: number };

  /** @internal Use the module's providers, {@link SchemaDb.create} or `withSchema()`. */
  constructor(runner: QueryRunner, template: SqlTemplate, savepoints = { next: 1 }) {
    this.#runner = runner;
    this.#template = template;
    this.#savepoints = savepoints;
  }

  /**
   * Creates a manager for `schema` (or for unqualified names when `null`) over `pool` (or over
   * a module's shared environment). Opens nothing: it only borrows connections per query.
   */
  static create(pool: pg.Pool | QueryEnvironment, schema: string | null): SchemaDb {
    const env: QueryEnvironment = pool instanceof pg.Pool ? { pool } : pool;
    return new SchemaDb(
      new PoolQueryRunner(env),
      new SqlTemplate(schema, env.templates ?? new TemplateCache()),
    );
  }

  /** The schema this manager qualifies tables with; `null` for the default manager. */
  get schema(): string | null {
    return this.#template.schema;
  }

  /** `true` when this manager is bound to an open transaction's connection. */
  get inTransaction(): boolean {
    return this.#runner.client !== null;
  }

  /**
   * A manager for another schema that shares this one's connection source: inside a
   * transaction, both run on the same connection, so one transaction can span schemas.
   */
  withSchema(schema: string | null): SchemaDb {
    return new SchemaDb(
      this.#runner,
      new SqlTemplate(schema, this.#template.cache),
      this.#savepoints,
    );
  }

  /** The quoted, schema-qualified name of `table`, e.g. `"orders"."orders"`. */
  table(name: string): string {
    return this.#template.table(name);
  }

  /** The SQL that would be sent for `sql`, with every placeholder expanded. For debugging. */
  prepareQuery(sql: string): string {
    return this.#template.expand(sql);
  }

  /** Runs `sql` and returns the full `pg` result. */
  query<T extends pg.QueryResultRow = pg.QueryResultRow>(
    sql: string,
    params?: QueryParams,
  ): Promise<pg.QueryResult<T>> {
    return this.#query<T>(sql, params, false);
  }

  #query<T extends pg.QueryResultRow>(
    sql: string,
    params: QueryParams | undefined,
    arrayRows: boolean,
  ): Promise<pg.QueryResult<T>> {
    let text: string;
    try {
      text = this.#template.expand(sql);
    } catch (err) {
      return Promise.reject(err);
    }
    const sink = this.#runner.env.sink;
    if (!sink) return this.#runner.query<T>(text, params, arrayRows);
    return this.#observed<T>(sink, text, params, arrayRows);
  }

  async #observed<T extends pg.QueryResultRow>(
    sink: NonNullable<QueryEnvironment['sink']>,
    text: string,
    params: QueryParams | undefined,
    arrayRows: boolean,
  ): Promise<pg.QueryResult<T>> {
    const started = performance.now();
    let result: pg.QueryResult<T> | undefined;
    let error: Error | undefined;
    try {
      result = await this.#runner.query<T>(text, params, arrayRows);
      return result;
    } catch (err) {
      error = err as Error;
      throw err;
    } finally {
      const durationMs = performance.now() - started;
      if (sink.wants(durationMs)) {
        sink.record({
          sql: text,
          params,
          schema: this.schema,
          inTransaction: this.inTransaction,
          durationMs,
          rowCount: result?.rowCount ?? null,
          error,
        });
      }
    }
  }

  /** Runs a statement and returns the number of rows it affected (0 for utility statements). */
  async execute(sql: string, params?: QueryParams): Promise<number> {
    return (await this.query(sql, params)).rowCount ?? 0;
  }

  /** Returns every row. */
  async fetchAll<T extends pg.QueryResultRow = pg.QueryResultRow>(
    sql: string,
    params?: QueryParams,
  ): Promise<T[]> {
    return (await this.query<T>(sql, params)).rows;
  }

  /** Returns the first row, or `null` when there is none. */
  async fetchOne<T extends pg.QueryResultRow = pg.QueryResultRow>(
    sql: string,
    params?: QueryParams,
  ): Promise<T | null> {
    return (await this.query<T>(sql, params)).rows[0] ?? null;
  }

  /**
   * Returns the first column of the first row, or `null` when there is no row. The column is
   * taken by position, so `SELECT 1, 2` gives 1 even though both columns share a name.
   */
  async fetchValue<T = unknown>(sql: string, params?: QueryParams): Promise<T | null> {
    const result = await this.#query<unknown[] & pg.QueryResultRow>(sql, params, true);
    const row = result.rows[0];
    if (row === undefined || row.length === 0) return null;
    return (row[0] ?? null) as T | null;
  }

  /**
   * Runs `fn` in a transaction on one connection and commits when it resolves, or rolls back
   * when it throws (the error is rethrown). `fn` receives a manager bound to that connection;
   * use it, not the outer manager, inside the callback.
   *
   * Called on a manager that is already in a transaction, it opens a savepoint instead: a
   * failure inside rolls back to the savepoint and rethrows, leaving the outer transaction
   * usable if the caller catches.
   *
   * The connection always returns to the pool, and is discarded if the connection broke.
   *
   * @example
   * await db.transaction(async (tx) => {
   *   await tx.execute('UPDATE {{tables.accounts}} SET balance = balance - $1 WHERE id = $2', [n, a]);
   *   await tx.execute('UPDATE {{tables.accounts}} SET balance = balance + $1 WHERE id = $2', [n, b]);
   * }, { isolationLevel: 'serializable', retries: 3 });
   */
  async transaction<T>(
    fn: (tx: SchemaDb) => Promise<T>,
    options: TransactionOptions = {},
  ): Promise<T> {
    const begin = beginStatement(options);
    const retries = options.retries ?? 0;
    if (!Number.isInteger(retries) || retries < 0) {
      throw new InvalidOptionsError(
        `transaction retries must be a non-negative integer, received ${retries}.`,
      );
    }
    if (this.#runner.client !== null) {
      if (begin !== 'BEGIN' || retries > 0) {
        throw new InvalidOptionsError(
          'A nested transaction runs in a savepoint and inherits the outer transaction: isolationLevel, readOnly and retries cannot be set on it.',
        );
      }
      return this.#savepoint(fn);
    }
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#transactionOnce(fn, begin);
      } catch (err) {
        if (attempt >= retries || !RETRYABLE_SQLSTATES.has((err as { code?: string }).code ?? '')) {
          throw err;
        }
        await backoff(attempt);
      }
    }
  }

  async #transactionOnce<T>(fn: (tx: SchemaDb) => Promise<T>, begin: string): Promise<T> {
    const lease = await checkout(this.#runner.env);
    const { client } = lease;
    const runner = new ClientQueryRunner(this.#runner.env, client);
    let discard: Error | undefined;
    try {
      await client.query(begin);
    } catch (err) {
      lease.release(isBrokenConnectionError(err) ? (err as Error) : undefined);
      throw err;
    }
    try {
      try {
        const result = await fn(new SchemaDb(runner, this.#template, { next: 1 }));
        runner.close();
        const commit = await client.query('COMMIT');
        // An aborted transaction (an error caught inside fn) "commits" as a ROLLBACK.
        if (commit.command !== 'COMMIT') throw new TransactionAbortedError();
        return result;
      } catch (err) {
        runner.close();
        // After a failed COMMIT the server has already ended the transaction and ROLLBACK is a
        // harmless no-op; if ROLLBACK itself fails, the connection is gone.
        if (lease.brokenBy) {
          discard = lease.brokenBy;
        } else {
          await client.query('ROLLBACK').catch((rollbackErr: Error) => {
            discard = rollbackErr;
          });
        }
        throw err;
      }
    } finally {
      // Errors thrown by fn do not condemn the connection: a successful ROLLBACK proves it
      // healthy. Only a failed ROLLBACK or an error event on the client discards it.
      runner.close();
      lease.release(discard);
    }
  }

  async #savepoint<T>(fn: (tx: SchemaDb) => Promise<T>): Promise<T> {
    const parent = this.#runner as ClientQueryRunner;
    if (parent.savepointActive) throw new ConcurrentSavepointError();
    parent.savepointActive = true;
    try {
      return await this.#savepointOnce(parent, fn);
    } finally {
      parent.savepointActive = false;
    }
  }

  async #savepointOnce<T>(parent: ClientQueryRunner, fn: (tx: SchemaDb) => Promise<T>): Promise<T> {
    const name = `pgt_savepoint_${this.#savepoints.next++}`;
    const runner = new ClientQueryRunner(parent.env, parent.client, parent);
    await parent.control(`SAVEPOINT ${name}`);
    try {
      const result = await fn(new SchemaDb(runner, this.#template, this.#savepoints));
      runner.close();
      await parent.control(`RELEASE SAVEPOINT ${name}`);
      return result;
    } catch (err) {
      runner.close();
      // If this fails too, the outer transaction is aborted and its own ROLLBACK cleans up.
      await parent.control(`ROLLBACK TO SAVEPOINT ${name}`).catch(() => undefined);
      throw err;
    }
  }
}

function beginStatement({ isolationLevel, readOnly }: TransactionOptions): string {
  let sql = 'BEGIN';
  if (isolationLevel !== undefined) {
    const level = ISOLATION_SQL[isolationLevel];
    if (level === undefined) {
      throw new InvalidOptionsError(
        `Unknown isolationLevel ${JSON.stringify(isolationLevel)}: use 'read committed', 'repeatable read' or 'serializable'.`,
      );
    }
    sql += ` ISOLATION LEVEL ${level}`;
  }
  if (readOnly) sql += ' READ ONLY';
  return sql;
}

function backoff(attempt: number): Promise<void> {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return new Promise((resolve) => setTimeout(resolve, Math.random() * ceiling));
}
