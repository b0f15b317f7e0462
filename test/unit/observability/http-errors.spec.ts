import { HttpException } from '@nestjs/common';
import {
  DatabaseConnectionError,
  DatabaseShuttingDownError,
  PoolAcquireTimeoutError,
  PoolClosedError,
  TemplateError,
} from '../../../lib/shared/errors.js';
import { httpStatusOf, toHttpError } from '../../../lib/observability/http-errors.js';
import {
  InvalidTenantIdError,
  TenantAlreadyExistsError,
  TenantNotFoundError,
  TenantRequiredError,
  TenantSuspendedError,
} from '../../../lib/tenancy/tenant.errors.js';

describe('HTTP statuses of errors', () => {
  it.each(
    (
      [
        [new InvalidTenantIdError(/^[a-z]+$/), 400],
        [new TenantRequiredError('send the "x-tenant-id" header'), 400],
        [new TenantSuspendedError('acme'), 403],
        [new TenantNotFoundError('acme'), 404],
        [new TenantAlreadyExistsError('acme'), 409],
        [new PoolAcquireTimeoutError(5_000, 10), 503],
        [new DatabaseConnectionError('Could not connect to PostgreSQL at app@db:5432/main'), 503],
        [new DatabaseShuttingDownError(), 503],
        [new PoolClosedError(), 503],
      ] as const
    ).map(([error, status]) => [error.name, error, status] as const),
  )('%s → %i', (_name, error, status) => {
    expect(httpStatusOf(error)).toBe(status);
    const http = toHttpError(error) as HttpException;
    expect(http).toBeInstanceOf(HttpException);
    expect(http.getStatus()).toBe(status);
    expect(http.getResponse()).toEqual({
      statusCode: status,
      error: error.name,
      message: error.message,
    });
    expect(http.cause).toBe(error);
  });

  it.each([
    ['an SQL error of this module', new TemplateError('Unknown placeholder {{x}}')],
    ['a plain Error', new Error('boom')],
    ['a value that is not an Error', 'boom'],
  ])('has none for %s, which passes through unchanged', (_label, error) => {
    expect(httpStatusOf(error)).toBeUndefined();
    expect(toHttpError(error)).toBe(error);
  });
});
