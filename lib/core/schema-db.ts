import pg from 'pg';
import type { StatementCacheStats } from '../connection/statement-cache.js';
import type { RowScope } from '../connection/row-scope.js';
import type { SchemaDbCreateOptions } from './schema-db-options.js';
import * as moved from './query/moved-retry.js';
import { PoolQueryRunner, type QueryParams, type QueryRunner } from './query/query-runner.js';
import { currentTransaction } from './transaction/ambient-transaction.js';
import { bareEnvironment, type QueryEnvironment } from './query/query-environment.js';
import { ReplicaQueryRunner } from './query/replica-query-runner.js';
import { observedQuery } from './query/observed-query.js';
import {
  copyRows,
  insertRows,
  type BulkRow,
  type BulkRowSource,
  type InsertManyOptions,
} from './bulk/bulk-load.js';
import { insertLoad } from './bulk/insert-load.js';
import { streamRows, type StreamOptions } from './bulk/result-stream.js';
import { SqlTemplate, SqlTemplateCache } from './sql/sql-template.js';
import type { TransactionOptions } from './transaction/transaction-options.js';
import { runTransaction } from './transaction/transaction-engine.js';

export type { SchemaDbCreateOptions } from './schema-db-options.js';

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
  readonly #sqlTemplate: SqlTemplate;
  readonly #savepoints: { next: number };
  readonly #scope: RowScope | undefined;
  readonly #home: moved.LeftHome; // shared with its transactions and replica: see retire()
  #replica: SchemaDb | undefined;

  /** @internal Use the module's providers, {@link SchemaDb.create} or `withSchema()`. */
  constructor(
    runner: QueryRunner,
    template: SqlTemplate,
    savepoints = { next: 1 },
    scope?: RowScope,
    home: moved.LeftHome = { left: false },
  ) {
    this.#runner = runner;
    this.#sqlTemplate = template;
    this.#savepoints = savepoints;
    this.#scope = scope;
    this.#home = home;
  }

  /**
   * @internal The tenant left this home. Moved (no `refuse`): its work (its transactions' too)
   * runs on the new home, as after a flip's `PTM01`. Dropped: it fails with `refuse()`.
   */
  retire(refuse?: () => Error): void {
    this.#home.left = true;
    this.#home.refuse ??= refuse;
  }

  /** @internal A pooled tenant's manager: `schema`'s tables (keys led by `column`), in `scope`. */
  static pooled(env: QueryEnvironment, schema: string, scope: RowScope, column: string): SchemaDb {
    return new SchemaDb(
      new PoolQueryRunner(env), // every connection has the shared tables' catalog: no affinity
      new SqlTemplate(schema, env.sqlTemplates ?? new SqlTemplateCache(), column),
      undefined,
      scope,
    );
  }

  /** The pooled tenant this manager's statements are held to; `undefined` for a schema's. */
  get pooledTenantId(): string | undefined {
    return this.#scope?.tenantId;
  }

  /**
   * Creates a manager for `schema` (or for unqualified names when `null`) over `pool` (or over
   * a module's shared environment). Opens nothing: it only borrows connections per query.
   */
  static create(
    pool: pg.Pool | QueryEnvironment,
    schema: string | null,
    options: SchemaDbCreateOptions = {},
  ): SchemaDb {
    const env: QueryEnvironment =
      pool instanceof pg.Pool ? bareEnvironment(pool, options.preparedStatements) : pool;
    return new SchemaDb(
      new PoolQueryRunner(env, schema ?? undefined),
      new SqlTemplate(schema, env.sqlTemplates ?? new SqlTemplateCache()),
    );
  }

  /**
   * Counters of the managed prepared statements this manager's queries use (hit rate, evictions,
   * statements held); `undefined` when they are off. The module's managers all share one cache,
   * also reported by `DatabaseMonitor.getStatementStats()`.
   */
  get statementStats(): StatementCacheStats | undefined {
    return this.#runner.env.statements?.stats();
  }

  /** The schema this manager qualifies tables with; `null` for the default manager. */
  get schema(): string | null {
    return this.#sqlTemplate.schema;
  }

  /**
   * `true` when this manager's queries run in a transaction: it is a transaction's own manager,
   * or the calling code runs inside `transaction()` or a `@Transactional()` method on its pool.
   */
  get inTransaction(): boolean {
    return this.#active().client !== null;
  }

  /** Where a query sent now goes: the flow's transaction on this pool, if any, joins it. */
  #active(): QueryRunner {
    if (this.#runner.client !== null) return this.#runner;
    return currentTransaction(this.#runner.env.pool)?.runner ?? this.#runner;
  }

  /**
   * A manager for another schema that shares this one's connection source: inside a
   * transaction, both run on the same connection, so one transaction can span schemas.
   */
  withSchema(schema: string | null): SchemaDb {
    const runner = this.#runner;
    return new SchemaDb(
      // A pool runner's checkouts prefer the new schema's connections; a transaction's is shared.
      runner instanceof PoolQueryRunner && runner.key !== (schema ?? undefined)
        ? new PoolQueryRunner(runner.env, schema ?? undefined)
        : runner,
      new SqlTemplate(schema, this.#sqlTemplate.cache),
      this.#savepoints,
    );
  }

  /**
   * This manager's reads, sent to a streaming replica: outside a transaction, each query goes to
   * a healthy replica (see the `replicas` option); inside one, it joins the transaction on the
   * primary, like any manager. After the current request or job has sent anything to the
   * primary, its replica reads see it (`replicas.readYourWrites`). Without replicas configured,
   * on a transaction's own manager and on a pooled tenant's, it returns this manager. Only for
   * reads: a write sent here fails with `ReplicaWriteError`.
   *
   * @example
   * const recent = await db.replica().fetchAll('SELECT * FROM {{tables.events}} ORDER BY at DESC LIMIT 50');
   */
  replica(): SchemaDb {
    const { replicas } = this.#runner.env;
    const bound = this.#runner.client !== null || this.#runner instanceof ReplicaQueryRunner;
    if (!replicas || bound || this.#scope !== undefined) return this;
    return (this.#replica ??= new SchemaDb(
      new ReplicaQueryRunner(this.#runner.env, replicas),
      this.#sqlTemplate,
      this.#savepoints,
      undefined,
      this.#home,
    ));
  }

  /** The quoted, schema-qualified name of `table`, e.g. `"orders"."orders"`. */
  table(name: string): string {
    return this.#sqlTemplate.table(name);
  }

  /** The SQL that would be sent for `sql`, with every placeholder expanded. For debugging. */
  prepareQuery(sql: string): string {
    return this.#sqlTemplate.expand(sql);
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
      text = this.#sqlTemplate.expand(sql);
    } catch (err) {
      return Promise.reject(err);
    }
    const sent = this.#send<T>(text, params, arrayRows);
    const { rehome } = this.#runner.env;
    if (!rehome) return sent;
    return sent.catch((err: unknown) =>
      moved.onNewHome(rehome, this, err, (db) => db.#query<T>(sql, params, arrayRows)),
    );
  }

  /** Sends already expanded SQL where a query sent now goes, observed. */
  #send<T extends pg.QueryResultRow>(
    text: string,
    params: QueryParams | undefined,
    arrayRows: boolean,
  ): Promise<pg.QueryResult<T>> {
    if (this.#home.left) return Promise.reject(this.#home.refuse?.() ?? moved.leftHome(this));
    const runner = this.#active();
    // The one routing point: a replica manager's runner picks the pool; anything else is the
    // primary's, and tells read-your-writes so.
    if (!(runner instanceof ReplicaQueryRunner)) runner.env.replicas?.notePrimary();
    const sink = runner.env.sink;
    if (!sink) return runner.query<T>(text, params, arrayRows, this.#scope);
    return observedQuery<T>(runner, sink, this.schema, text, params, arrayRows, this.#scope);
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
   * Loads `rows` into `table` with `COPY … FROM STDIN`, the fastest way into PostgreSQL, and
   * returns the number of rows copied. `table` is a table name of this manager's schema
   * (`'events'`) or a template (`'{{tables.events}}'`). Rows are arrays in `columns` order or
   * objects with exactly those keys (see {@link BulkRow}); the source may be an array, any
   * iterable, or an object-mode readable stream, consumed with backpressure.
   *
   * All or nothing: a row the server rejects, a row of the wrong shape or a source that fails
   * aborts the COPY and nothing is written. Inside a transaction it joins it, in a savepoint, so
   * a caller that catches the error can go on. Bound by `pool.statementTimeoutMs` as a whole.
   *
   * A pooled tenant's manager cannot COPY (PostgreSQL refuses `COPY FROM` on a table with
   * row-level security): it inserts the rows instead, up to 1,000 per `INSERT`, each statement
   * in the tenant's scope, all in one transaction (or savepoint), with the same result and
   * errors. Slower than COPY, by the server's parse and plan of each statement.
   *
   * @throws BulkLoadColumnsError, BulkLoadRowError, or the server's error.
   * @example
   * await db.copyFrom('events', ['id', 'payload'], [[1, { a: 1 }], [2, null]]);
   * await db.copyFrom('events', ['id', 'payload'], Readable.from(generateRows()));
   */
  copyFrom(table: string, columns: readonly string[], rows: BulkRowSource): Promise<number> {
    try {
      if (this.#home.left)
        return moved.onLeftHome(this.#rehome, this, (db) => db.copyFrom(table, columns, rows));
      if (this.#scope) return insertLoad(this, this.#target(table), columns, rows);
      const runner = this.#active();
      // A write: later replica reads of this request or job must see it.
      runner.env.replicas?.notePrimary();
      return copyRows(runner, this.schema, this.#target(table), columns, rows);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Inserts `rows` in one `INSERT … SELECT * FROM unnest($1::type[], …)` statement: one array
   * parameter per column however many rows, so it has no 65,535-parameter limit and the server
   * parses one short statement. Returns the rows inserted (or updated). Column types are read
   * from the catalog once per table. Joins the calling code's transaction like any query.
   *
   * Array columns cannot go through `unnest()` (it flattens them): use {@link copyFrom}. With
   * `onConflict: { action: 'update' }`, two rows of one call may not hit the same existing row
   * (PostgreSQL refuses to update a row twice in one statement).
   *
   * @throws BulkLoadColumnsError, BulkLoadRowError, or the server's error.
   * @example
   * await db.insertMany('users', [{ id: 1, name: 'a' }, { id: 2, name: 'b' }], {
   *   onConflict: { target: ['id'], action: 'update' },
   * });
   */
  async insertMany(
    table: string,
    rows: readonly BulkRow[],
    options: InsertManyOptions = {},
  ): Promise<number> {
    if (this.#home.left)
      return moved.onLeftHome(this.#rehome, this, (db) => db.insertMany(table, rows, options));
    return insertRows(this.#runner.env.pool, this.#target(table), rows, options, (text, params) =>
      this.#send(this.#sqlTemplate.withTenantKeys(text), params, false),
    );
  }

  /**
   * The rows of `sql`, as an async iterable fetched `batchSize` rows at a time while the
   * consumer asks for them, for result sets too large to hold in memory. The connection is held
   * while iterating and given back however the loop ends: done, `break`, an error of the query
   * or one thrown by the loop body. Pipe it with `Readable.from(db.stream(…))`.
   *
   * Outside a transaction it runs on a connection of its own; inside one, on the transaction's
   * (as a SQL cursor, so other statements may run between batches). The whole iteration counts
   * as one statement for `pool.statementTimeoutMs`, and a consumer that stops reading for
   * `pool.idleInTransactionTimeoutMs` loses the connection: read promptly, or raise them.
   *
   * A pooled tenant's manager streams in the tenant's scope: outside a transaction, in one of its
   * own that sets the scope first and ends with the iteration (the tenant's role never outlives
   * it); inside one, every cursor statement sets it again.
   *
   * @example
   * for await (const row of db.stream<Event>('SELECT * FROM {{tables.events}} ORDER BY id')) {
   *   await sink.write(row);
   * }
   */
  stream<T extends pg.QueryResultRow = pg.QueryResultRow>(
    sql: string,
    params?: QueryParams,
    options?: StreamOptions,
  ): AsyncGenerator<T, void, undefined> {
    if (this.#home.left)
      return moved.rowsOnLeftHome(this.#rehome, this, (db) => db.stream<T>(sql, params, options));
    const text = this.#sqlTemplate.expand(sql);
    return streamRows<T>(this.#active(), this.schema, text, params, options, this.#scope);
  }

  get #rehome(): moved.Rehome | undefined {
    return moved.rehomeOf(this.#home, this.#runner.env.rehome);
  }

  /** A bulk load's target: a table of this schema, or a `{{tables.x}}` template. */
  #target(table: string): string {
    return typeof table === 'string' && table.includes('{{')
      ? this.#sqlTemplate.expand(table)
      : this.#sqlTemplate.table(table);
  }

  /**
   * Runs `fn` in a transaction on one connection and commits when it resolves, or rolls back
   * when it throws (the error is rethrown). `fn` receives a manager bound to that connection.
   *
   * The transaction follows the call: while `fn` runs, every manager on the same pool (other
   * services' `@InjectTenantDb()` and `@InjectSchemaDb()` managers, `withSchema()` managers)
   * runs its queries in it, in this async flow only. Concurrent requests never share it.
   *
   * Called while a transaction is already running, `options.propagation` decides: by default a
   * transaction's own manager (`tx.transaction()`) opens a savepoint (a failure inside rolls
   * back to it and rethrows, leaving the outer transaction usable if the caller catches), and
   * any other manager joins the running transaction.
   *
   * The connection always returns to the pool, and is discarded if the connection broke. `retries`
   * also re-runs, on its new home, a tenant's transaction refused by a move (`TenantMovedError`).
   * @example
   * await db.transaction(async (tx) => {
   *   await tx.execute('UPDATE {{tables.accounts}} SET balance = balance - $1 WHERE id = $2', [n, a]);
   *   await ledger.record(a, b, n); // another service's manager: joins this transaction
   * }, { isolationLevel: 'serializable', retries: 3 });
   */
  transaction<T>(fn: (tx: SchemaDb) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    if (this.#home.left && !this.inTransaction) {
      return moved.onLeftHome(this.#rehome, this, (db) => db.transaction(fn, options));
    }
    const retries = this.inTransaction ? 0 : options.retries;
    const run = runTransaction(
      {
        runner: this.#runner,
        savepoints: this.#savepoints,
        manager: this,
        managerOn: (runner, savepoints) =>
          new SchemaDb(runner, this.#sqlTemplate, savepoints, this.#scope, this.#home),
      },
      fn,
      options,
    );
    return moved.transactionOnNewHome(run, this.#runner.env.rehome, this, retries, (db, left) =>
      db.transaction(fn, { ...options, retries: left }),
    );
  }
}
