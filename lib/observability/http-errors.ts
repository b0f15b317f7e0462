import { HttpException } from '@nestjs/common';
import pg from 'pg';
import {
  DatabaseConnectionError,
  DatabaseShuttingDownError,
  PoolAcquireTimeoutError,
  PoolClosedError,
} from '../shared/errors.js';
import { TenantError } from '../tenancy/tenant.errors.js';

/** What pg says when the socket under a query closed (the server stopped, the network cut it). */
const LOST_CONNECTION_MESSAGE =
  /^(Connection terminated|Client has encountered a connection error and is not queryable)/;

/**
 * Whether `error` is pg's report of a connection the server ended or lost under a query:
 * PostgreSQL stopping, crashing or refusing new sessions (57P01–57P03), a connection exception
 * (08…), or the socket closed. Not a socket error of anything else (`ECONNRESET` from an HTTP
 * call stays the application's).
 */
function isLostConnection(error: unknown): boolean {
  if (error instanceof pg.DatabaseError) return /^(08|57P0[1-3])/.test(error.code ?? '');
  const message = (error as { message?: unknown } | null)?.message;
  return (
    error instanceof Error && typeof message === 'string' && LOST_CONNECTION_MESSAGE.test(message)
  );
}

/**
 * The error a client is told about: a connection lost under a query becomes a
 * `DatabaseConnectionError` (the database cannot be reached right now), with pg's error as its
 * cause; anything else is itself.
 */
export function presentedError(error: unknown): unknown {
  if (!isLostConnection(error)) return error;
  return new DatabaseConnectionError(
    `The connection to PostgreSQL was lost (${(error as Error).message}); retry the request.`,
    { cause: error },
  );
}

/**
 * The HTTP status for this module's errors that have one: tenant errors (400, 403, 404, 409),
 * and 503 when the database cannot take more work (pool exhausted or closed, shutting down) or
 * cannot be reached (`DatabaseConnectionError`: the server is down, restarting or refusing us;
 * or the connection was lost under a query). `undefined` for everything else.
 */
export function httpStatusOf(error: unknown): number | undefined {
  if (error instanceof TenantError) return error.status;
  if (
    error instanceof PoolAcquireTimeoutError ||
    error instanceof DatabaseConnectionError ||
    error instanceof DatabaseShuttingDownError ||
    error instanceof PoolClosedError ||
    isLostConnection(error)
  ) {
    return 503;
  }
  return undefined;
}

/**
 * One of those errors as Nest's HTTP exception, with a JSON body that holds only the error's
 * own message (which never echoes raw request input). Other errors pass through.
 */
export function toHttpError(err: unknown): unknown {
  const status = httpStatusOf(err);
  if (status === undefined) return err;
  const shown = presentedError(err);
  const { name, message } = shown as Error;
  return new HttpException({ statusCode: status, error: name, message }, status, { cause: shown });
}
