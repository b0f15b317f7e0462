import { HttpException } from '@nestjs/common';
import {
  DatabaseConnectionError,
  DatabaseShuttingDownError,
  PoolAcquireTimeoutError,
  PoolClosedError,
} from '../shared/errors.js';
import { TenantError } from '../tenancy/tenant.errors.js';

/**
 * The HTTP status for this module's errors that have one: tenant errors (400, 403, 404, 409),
 * and 503 when the database cannot take more work (pool exhausted or closed, shutting down) or
 * cannot be reached (`DatabaseConnectionError`: the server is down, restarting or refusing us).
 * `undefined` for everything else.
 */
export function httpStatusOf(error: unknown): number | undefined {
  if (error instanceof TenantError) return error.status;
  if (
    error instanceof PoolAcquireTimeoutError ||
    error instanceof DatabaseConnectionError ||
    error instanceof DatabaseShuttingDownError ||
    error instanceof PoolClosedError
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
  const { name, message } = err as Error;
  return new HttpException({ statusCode: status, error: name, message }, status, { cause: err });
}
