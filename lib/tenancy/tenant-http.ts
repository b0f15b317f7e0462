import { HttpException } from '@nestjs/common';
import { TenantError } from './tenant.errors.js';

/**
 * A tenant error as Nest's HTTP exception (400/403/404/409) with a JSON body that holds only
 * the error's own message, which never echoes raw request input. Other errors pass through.
 */
export function toHttpError(err: unknown): unknown {
  if (!(err instanceof TenantError)) return err;
  return new HttpException(
    { statusCode: err.status, error: err.name, message: err.message },
    err.status,
    { cause: err },
  );
}
