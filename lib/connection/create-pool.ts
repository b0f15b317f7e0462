import { Logger, type LoggerService } from '@nestjs/common';
import pg from 'pg';
import { describeTarget, toAcquireError } from './connection-errors.js';
import { installAffinity } from './pool-affinity.js';
import { resolvePoolOptions, toPgPoolConfig, type ConnectionSettings } from './pool-options.js';

/**
 * Creates the one shared pool. Its `error` listener turns errors on idle clients (the server
 * restarting, `pg_terminate_backend`, a network drop) into a warning: without a listener,
 * `pg` re-emits them as an uncaught exception and the process dies. The pool discards the
 * broken client and opens a fresh one on the next checkout.
 *
 * No `connect` hook sets session state: tenancy is carried by qualified names, never by a
 * session, so every connection can serve every schema (see docs/production.md, "Behind
 * PgBouncer", for the startup parameters that carry the server-side timeouts). Tenant affinity
 * and memory-aware recycling (`pool.affinity`, `pool.backendMemory`) are installed on it.
 */
export function createPool(
  settings: ConnectionSettings,
  logger: LoggerService = new Logger('DatabaseModule'),
): pg.Pool {
  const config = toPgPoolConfig(settings);
  const pool = new TypedErrorPool(config);
  const target = describeTarget(config);
  trackClients(pool);
  installAffinity(pool, resolvePoolOptions(settings.pool), (message) => {
    logger.warn(message);
  });
  pool.on('error', (err: Error & { code?: string }) => {
    logger.warn(
      `Idle connection to ${target} failed and was discarded (${err.code ? `${err.code}: ` : ''}${err.message}); the pool will reconnect on demand.`,
    );
  });
  return pool;
}

/**
 * A `pg.Pool` whose checkouts fail with this module's typed errors: `DatabaseConnectionError`
 * naming `user@host:port/db` (server down, refused, bad credentials, unknown database),
 * `PoolAcquireTimeoutError`, `PoolClosedError`. Every connection the library makes goes through
 * here or through `openSession`, which translate the same way, so an application, the registry,
 * migrations and the CLI report one failure with one error. `pool.query()` checks out through
 * `connect()`, so it is covered too; SQL errors pass through unchanged.
 */
class TypedErrorPool extends pg.Pool {
  override connect(): Promise<pg.PoolClient>;
  override connect(
    callback: (
      err: Error | undefined,
      client: pg.PoolClient | undefined,
      done: (release?: unknown) => void,
    ) => void,
  ): void;
  override connect(
    callback?: (
      err: Error | undefined,
      client: pg.PoolClient | undefined,
      done: (release?: unknown) => void,
    ) => void,
  ): Promise<pg.PoolClient> | void {
    if (callback === undefined) {
      return super.connect().catch((err: unknown) => {
        throw toAcquireError(err, this.options);
      });
    }
    super.connect((err, client, done) =>
      callback(err ? toAcquireError(err, this.options) : err, client, done),
    );
  }
}

/** The connections each pool made by {@link createPool} has open, until their sockets close. */
const openClients = new WeakMap<pg.Pool, Set<pg.Client>>();

function trackClients(pool: pg.Pool): void {
  const open = new Set<pg.Client>();
  openClients.set(pool, open);
  pool.on('connect', (client: pg.Client) => {
    open.add(client);
    client.once('end', () => open.delete(client));
  });
}

/**
 * Ends the pool and resolves once every connection it opened has closed its socket.
 * `pool.end()` alone resolves as soon as each client has been *asked* to end: a server stopped
 * right after it (the embedded one at shutdown) can still terminate those backends, and the
 * pool then reports `57P01` on connections it had already let go. Bounded by `timeoutMs`;
 * resolves `'late'` when a connection is still checked out or open at the bound.
 */
export async function endPool(pool: pg.Pool, timeoutMs: number): Promise<'ended' | 'late'> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), timeoutMs);
    timer.unref();
  });
  const closed = async (): Promise<'ended'> => {
    await pool.end();
    const open = [...(openClients.get(pool) ?? [])];
    await Promise.all(open.map((client) => new Promise((done) => client.once('end', done))));
    return 'ended';
  };
  try {
    return await Promise.race([closed(), late]);
  } finally {
    clearTimeout(timer);
  }
}
