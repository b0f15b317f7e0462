import { createHash } from 'node:crypto';
import { Logger, type LoggerService } from '@nestjs/common';
import type pg from 'pg';
import { PreparedStatementStaleError } from '../shared/errors.js';
import type { ResolvedPreparedStatementOptions } from './statement-cache-options.js';
import { isAway } from './pool-affinity.js';
import {
  closeFirst,
  namedQuery,
  sendUnnamed,
  type PgConnection,
  type QueryCallback,
  type QueryPrefix,
} from './pg-query.js';

/** Counters of a statement cache, from {@link DatabaseMonitor.getStatementStats}. */
export interface StatementCacheStats {
  /**
   * `on`: statements are prepared; `off`: disabled by the options; `detecting`: `'auto'` and no
   * connection has answered yet; `pooler`: `'auto'` found a pooler in front, so it is off.
   */
  readonly mode: 'on' | 'off' | 'detecting' | 'pooler';
  /** Queries that reused a statement already prepared on their connection. */
  readonly hits: number;
  /** Queries whose statement was not prepared on their connection (yet, or any more). */
  readonly misses: number;
  /** Statements prepared (a miss that reached `prepareThreshold` uses). */
  readonly prepared: number;
  /** `hits / (hits + misses)`, 0 before the first prepared query. */
  readonly hitRate: number;
  /** Statements closed to stay within `maxPerConnection`. */
  readonly evictions: number;
  /** Queries run again after their statement was invalidated (`26000`, `0A000`). */
  readonly reprepared: number;
  /** Queries sent unprepared: no bind parameters, in a transaction, or the cache is off. */
  readonly unprepared: number;
  /** Statements prepared on the pool's open connections now. */
  readonly statements: number;
  /** `maxPerConnection`. */
  readonly maxPerConnection: number;
}

/** A statement prepared on one connection, linked into its connection's use order. */
interface Statement {
  readonly text: string;
  readonly name: string;
  /** The statement used just before this one, or `undefined` for the least recently used. */
  older: Statement | undefined;
  /** The statement used just after this one, or `undefined` for the most recently used. */
  newer: Statement | undefined;
}

/**
 * One connection's statements: query text → statement, and a list from the least recently used
 * to the most: a hit only relinks its entry, and the oldest is found without a scan.
 */
interface ConnectionStatements {
  readonly byText: Map<string, Statement>;
  oldest: Statement | undefined;
  newest: Statement | undefined;
  /** Texts seen but not prepared yet → uses so far, oldest first, at most `maxPerConnection`. */
  readonly seen: Map<string, number>;
  /** Names to close on the server, sent ahead of the next prepared query. */
  closing: string[];
}

const STALE_ROUTINE = 'RevalidateCachedQuery';
let cacheIds = 0;
/** How many times `prepareThreshold` a visiting tenant's statement needs on a connection. */
const AWAY_FACTOR = 4;

/**
 * `true` for the errors that say a cached statement is gone or unusable: `26000` (the server
 * does not know the name: `DEALLOCATE ALL`, `DISCARD ALL`, a pooler switched backends) and the
 * `0A000` that plan revalidation raises ("cached plan must not change result type"), not any
 * other "feature not supported".
 */
function isStale(err: Error): boolean {
  const { code, routine } = err as Error & { code?: string; routine?: string };
  if (code === '26000') return true;
  return (
    code === '0A000' &&
    (routine === STALE_ROUTINE || /cached plan must not change result type/.test(err.message))
  );
}

/**
 * A bounded LRU of named prepared statements per pooled connection, keyed by the expanded SQL.
 * Only statements with bind parameters are prepared: a parameterless query keeps pg's simple
 * protocol (one message, several statements allowed). Internal: created by the module, or by
 * `SchemaDb.create(pool, schema, { preparedStatements })`.
 */
export class StatementCache {
  readonly options: ResolvedPreparedStatementOptions;
  readonly #connections = new WeakMap<pg.ClientBase, ConnectionStatements>();
  readonly #prefix = `pgt${++cacheIds}_`;
  readonly #logger: LoggerService;
  #detected: 'unknown' | 'direct' | 'pooler' = 'unknown';
  #probing = false;
  #hits = 0;
  #misses = 0;
  #prepared = 0;
  #evictions = 0;
  #reprepared = 0;
  #unprepared = 0;
  #statements = 0;

  constructor(
    options: ResolvedPreparedStatementOptions,
    pool?: pg.Pool,
    logger: LoggerService = new Logger('DatabaseModule'),
  ) {
    this.options = options;
    this.#logger = logger;
    // A connection that leaves the pool takes its statements with it.
    pool?.on('remove', (client: pg.PoolClient) => {
      const state = this.#connections.get(client);
      if (state) this.#statements -= state.byText.size;
      this.#connections.delete(client);
    });
  }

  /** The current counters. */
  stats(): StatementCacheStats {
    const lookups = this.#hits + this.#misses;
    return {
      mode: this.#mode(),
      hits: this.#hits,
      misses: this.#misses,
      prepared: this.#prepared,
      hitRate: lookups === 0 ? 0 : this.#hits / lookups,
      evictions: this.#evictions,
      reprepared: this.#reprepared,
      unprepared: this.#unprepared,
      statements: this.#statements,
      maxPerConnection: this.options.maxPerConnection,
    };
  }

  /** Whether named statements are in use: on, or `'auto'` found a direct connection. */
  get prepares(): boolean {
    return this.#mode() === 'on';
  }

  #mode(): StatementCacheStats['mode'] {
    const { enabled } = this.options;
    if (enabled === false) return 'off';
    if (enabled === true || this.#detected === 'direct') return 'on';
    return this.#detected === 'pooler' ? 'pooler' : 'detecting';
  }

  /**
   * Runs `text` on `client`, as a prepared statement when it can be, and calls `callback` once.
   * A statement found invalidated is re-prepared and the query run once more, unless a
   * transaction is open: the error has aborted it, so the caller gets
   * `PreparedStatementStaleError` and the statement is dropped. Once only: invalid again, the
   * caller gets the error too.
   */
  send<R extends pg.QueryResultRow>(
    client: pg.ClientBase,
    text: string,
    values: readonly unknown[] | undefined,
    arrayRows: boolean | undefined,
    callback: QueryCallback<R>,
    prefix?: QueryPrefix,
  ): void {
    // null before the first ReadyForQuery has been recorded: pg-pool hands a new connection
    // out from inside its connect callback, idle.
    const status = client.getTransactionStatus() ?? 'I';
    const way = this.#way(values, status);
    if (way === 'prepared') {
      this.#run(client, text, values as unknown[], arrayRows, status, false, callback, prefix);
      return;
    }
    const unnamed = () => {
      this.#unprepared++;
      sendUnnamed(client, text, values ?? [], arrayRows, callback, prefix);
    };
    if (way === 'probe') this.#probe(client, unnamed);
    else unnamed();
  }

  /** How a statement goes: prepared, unnamed, or unnamed after probing the connection. */
  #way(
    values: readonly unknown[] | undefined,
    status: string | null,
  ): 'prepared' | 'unnamed' | 'probe' {
    const { enabled, inTransactions } = this.options;
    if (enabled === false || values === undefined || values.length === 0) return 'unnamed';
    if (status !== 'I' && !(status === 'T' && inTransactions)) return 'unnamed';
    if (enabled === 'auto' && this.#detected !== 'direct') {
      return this.#detected === 'unknown' && status === 'I' && !this.#probing ? 'probe' : 'unnamed';
    }
    return 'prepared';
  }

  /**
   * Behind a pooler the backend key data comes from the pooler, not from PostgreSQL, so the
   * process id it announced is not the one that answers. Runs before the caller's query on an
   * idle connection, which `then` sends once the answer is in (one round trip, once): never
   * queued behind another query, which pg 9 no longer allows.
   */
  #probe(client: pg.ClientBase, then: () => void): void {
    this.#probing = true;
    const announced = (client as unknown as { processID?: number }).processID;
    client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid', (err, result) => {
      this.#probing = false;
      if (!err && this.#detected === 'unknown') {
        this.#detected = result.rows[0]?.pid === announced ? 'direct' : 'pooler';
        if (this.#detected === 'pooler') {
          this.#logger.log(
            'Prepared statements are off: a connection pooler is in front of PostgreSQL (its backend key is not the server process id). ' +
              'Set preparedStatements: { enabled: true } if it keeps named statements (PgBouncer 1.21+ with max_prepared_statements).',
          );
        }
      }
      // On a broken connection the caller's own query fails with the connection's error.
      then();
    });
  }

  #run<R extends pg.QueryResultRow>(
    client: pg.ClientBase,
    text: string,
    values: unknown[],
    arrayRows: boolean | undefined,
    status: string | null,
    retried: boolean,
    callback: QueryCallback<R>,
    prefix: QueryPrefix | undefined,
  ): void {
    const state = this.#stateOf(client);
    const conn = (client as unknown as { connection: PgConnection }).connection;
    let statement = state.byText.get(text);
    if (statement !== undefined) {
      this.#hits++;
      if (statement !== state.newest) {
        unlink(state, statement);
        append(state, statement);
      }
    } else {
      this.#misses++;
      if (!retried && !this.#due(state, text, isAway(client))) {
        sendUnnamed(client, text, values, arrayRows, callback, prefix);
        return;
      }
      this.#prepared++;
      if (state.byText.size >= this.options.maxPerConnection) this.#evictOldest(state, conn);
      // Named after the text itself: a name can never stand for another statement, on any
      // connection of any instance (even where a pooler moves names between backends).
      const name =
        this.#prefix + createHash('sha256').update(text).digest('base64url').slice(0, 24);
      statement = { text, name, older: undefined, newer: undefined };
      state.byText.set(text, statement);
      append(state, statement);
      this.#statements++;
    }
    const prepared = statement;
    const done: QueryCallback<R> = (err, result) => {
      if (
        err &&
        conn.parsedStatements[prepared.name] === undefined &&
        state.byText.get(text) === prepared
      ) {
        // Never parsed (a syntax error, a connection error): the server has no such statement.
        this.#forget(state, prepared);
      }
      if (!err || !isStale(err)) {
        callback(err, result);
        return;
      }
      this.#drop(state, conn, prepared);
      if (status === 'I' && !retried) {
        // Outside a transaction the failed statement ran nothing: running it again is safe.
        this.#reprepared++;
        this.#run(client, text, values, arrayRows, status, true, callback, prefix);
        return;
      }
      callback(new PreparedStatementStaleError(err, { afterRetry: retried }), result);
    };
    const query = namedQuery(prepared.name, text, values, arrayRows, done);
    const closing = state.closing;
    if (closing.length !== 0) {
      state.closing = [];
      closeFirst(query, closing);
    }
    prefix?.(query);
    client.query(query);
  }

  /**
   * Counts one more use of `text`; `true` once it reaches `prepareThreshold`, or
   * {@link AWAY_FACTOR} times that on a checkout away from the schema's preferred connection
   * (tenant affinity): a tenant that visits now and then must not evict the statements of the
   * tenants the connection serves, while one that comes back often (a busy tenant spilling
   * over its own connection) gets its statements prepared here too.
   */
  #due(state: ConnectionStatements, text: string, away: boolean): boolean {
    const uses = (state.seen.get(text) ?? 0) + 1;
    state.seen.delete(text);
    const threshold = this.options.prepareThreshold * (away ? AWAY_FACTOR : 1);
    if (uses >= threshold) return true;
    state.seen.set(text, uses);
    if (state.seen.size > this.options.maxPerConnection) {
      state.seen.delete(state.seen.keys().next().value!);
    }
    return false;
  }

  #stateOf(client: pg.ClientBase): ConnectionStatements {
    let state = this.#connections.get(client);
    if (!state) {
      state = {
        byText: new Map(),
        oldest: undefined,
        newest: undefined,
        seen: new Map(),
        closing: [],
      };
      this.#connections.set(client, state);
    }
    return state;
  }

  #evictOldest(state: ConnectionStatements, pg: PgConnection): void {
    const oldest = state.oldest;
    if (oldest === undefined) return;
    this.#evictions++;
    this.#drop(state, pg, oldest);
  }

  /** Forgets `statement` here and in pg, and closes it on the server with the next query. */
  #drop(state: ConnectionStatements, pg: PgConnection, statement: Statement): void {
    if (state.byText.get(statement.text) === statement) this.#forget(state, statement);
    delete pg.parsedStatements[statement.name];
    state.closing.push(statement.name);
  }

  /** Removes `statement` from its connection's table and use order. */
  #forget(state: ConnectionStatements, statement: Statement): void {
    state.byText.delete(statement.text);
    unlink(state, statement);
    this.#statements--;
  }
}

/** Puts `statement` last in its connection's use order (most recently used). */
function append(state: ConnectionStatements, statement: Statement): void {
  statement.older = state.newest;
  statement.newer = undefined;
  if (state.newest === undefined) state.oldest = statement;
  else state.newest.newer = statement;
  state.newest = statement;
}

/** Takes `statement` out of its connection's use order. */
function unlink(state: ConnectionStatements, statement: Statement): void {
  const { older, newer } = statement;
  if (older === undefined) state.oldest = newer;
  else older.newer = newer;
  if (newer === undefined) state.newest = older;
  else newer.older = older;
  statement.older = statement.newer = undefined;
}
