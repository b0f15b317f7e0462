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

/** The `extensions.code` of a GraphQL error, by the HTTP status of the module's error. */
const GRAPHQL_CODES: Readonly<Record<number, string>> = {
  400: 'BAD_REQUEST',
  403: 'FORBIDDEN',
  404: 'NOT_FOUND',
  409: 'CONFLICT',
  503: 'SERVICE_UNAVAILABLE',
};

/** What a GraphQL client reads of one of this module's errors in `errors[].extensions`. */
export interface GraphqlErrorExtensions {
  /** `BAD_REQUEST`, `FORBIDDEN`, `NOT_FOUND`, `CONFLICT` or `SERVICE_UNAVAILABLE`. */
  readonly code: string;
  /** The HTTP status the error has over plain HTTP (400, 403, 404, 409, 503). */
  readonly status: number;
  /** The error's class name, e.g. `TenantSuspendedError`, as in the HTTP answer's `error`. */
  readonly error: string;
}

/**
 * One of the errors {@link httpStatusOf} knows, as a GraphQL resolver throws it: the same typed
 * error (a lost connection presented as a `DatabaseConnectionError`) carrying `extensions`, which
 * graphql-js copies onto the GraphQL error every driver sends. Other errors pass through.
 */
export function toGraphqlError(err: unknown): unknown {
  const status = httpStatusOf(err);
  if (status === undefined) return err;
  const shown = presentedError(err) as Error;
  const extensions: GraphqlErrorExtensions = {
    code: GRAPHQL_CODES[status] ?? 'INTERNAL_SERVER_ERROR',
    status,
    error: shown.name,
  };
  // Not enumerable: logs and JSON of the error stay as they were.
  Object.defineProperty(shown, 'extensions', { value: extensions, configurable: true });
  return shown;
}

/**
 * `err` as the transport of `type` answers it: an HTTP exception for `http`, an error with
 * GraphQL `extensions` for `graphql`, else itself.
 */
export function presentedFor(type: string, err: unknown): unknown {
  if (type === 'http') return toHttpError(err);
  if (type === 'graphql') return toGraphqlError(err);
  return err;
}
