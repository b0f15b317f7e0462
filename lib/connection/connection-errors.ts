import pg from 'pg';
import {
  DatabaseConnectionError,
  PgTenancyError,
  PoolAcquireTimeoutError,
  PoolClosedError,
} from '../shared/errors.js';

// SQLSTATE classes after which a session cannot be trusted: 08 connection exception,
// 57P admin shutdown / crash shutdown / cannot connect now / terminated by administrator.
const BROKEN_SESSION_SQLSTATE = /^(08|57P)/;

/**
 * Decides whether a client that produced `err` must be discarded rather than returned to the
 * pool. Ordinary SQL errors (constraint violations, syntax errors, statement timeouts) and
 * client-side errors raised before anything was sent (a value `pg` cannot serialise) leave the
 * session healthy: throwing those clients away would turn every bad request into a reconnect.
 */
export function isBrokenConnectionError(err: unknown): boolean {
  if (err instanceof PgTenancyError) return false;
  if (err instanceof pg.DatabaseError) {
    if (err.severity === 'FATAL' || err.severity === 'PANIC') return true;
    return BROKEN_SESSION_SQLSTATE.test(err.code ?? '');
  }
  if (!(err instanceof Error)) return false;
  // Socket errors (ECONNRESET, EPIPE, ...), "Connection terminated unexpectedly", a client that
  // already failed, a client-side query_timeout (the query may still run on the server): the
  // session state is unknown, so drop it.
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return true;
  return CONNECTION_FAILURE_MESSAGE.test(err.message);
}

const CONNECTION_FAILURE_MESSAGE =
  /Connection terminated|not queryable|Query read timeout|connection timeout|socket|ECONN/i;

/**
 * Translates a failure of `pool.connect()` (or of a session's `client.connect()`) into this
 * module's typed errors; one of them already typed passes through.
 */
export function toAcquireError(err: unknown, config: pg.PoolConfig): Error {
  if (err instanceof PgTenancyError) return err;
  // Read the message of any error-like value: a socket error raised in another realm (a VM
  // context, a test runner's sandbox) is not an instance of this realm's Error.
  const raw = (err as { message?: unknown } | null)?.message;
  const message = typeof raw === 'string' ? raw : String(err);
  const { connectionTimeoutMillis = 0, max = 10 } = config;
  if (message === 'timeout exceeded when trying to connect') {
    return new PoolAcquireTimeoutError(connectionTimeoutMillis, max, { cause: err });
  }
  if (message.startsWith('Cannot use a pool after calling end')) {
    return new PoolClosedError();
  }
  if (err instanceof pg.DatabaseError && err.severity === 'FATAL' && err.code !== '57P03') {
    // Authentication, unknown database, too many connections: the server said no. Its message
    // never contains the password, so it is safe to repeat.
    return new DatabaseConnectionError(
      `PostgreSQL at ${describeTarget(config)} refused the connection: ${err.message}`,
      { cause: err },
    );
  }
  return new DatabaseConnectionError(
    `Could not connect to PostgreSQL at ${describeTarget(config)}: ${message}. ` +
      'Check that the server is running and the connection settings are right.',
    { cause: err },
  );
}

/**
 * `user@host:port/database` for messages and logs. Built from parsed parts so a password in a
 * connection string can never leak into it.
 */
export function describeTarget(config: pg.PoolConfig): string {
  let { host, port, database, user } = config;
  if (config.connectionString) {
    try {
      const url = new URL(config.connectionString);
      host ??= url.hostname || undefined;
      port ??= url.port ? Number(url.port) : undefined;
      database ??= decodeURIComponent(url.pathname.replace(/^\//, '')) || undefined;
      user ??= decodeURIComponent(url.username) || undefined;
    } catch {
      return '<unparseable connection string>';
    }
  }
  host ??= process.env.PGHOST ?? 'localhost';
  port ??= Number(process.env.PGPORT ?? 5432);
  database ??= process.env.PGDATABASE ?? user ?? process.env.PGUSER;
  user ??= process.env.PGUSER;
  return `${user ? `${user}@` : ''}${host}:${port}/${database ?? ''}`;
}
