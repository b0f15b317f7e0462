import { HttpException } from '@nestjs/common';
import pg from 'pg';
import {
  DatabaseConnectionError,
  DatabaseShuttingDownError,
  PoolAcquireTimeoutError,
  PoolClosedError,
  TemplateError,
} from '../../../lib/shared/errors.js';
import {
  httpStatusOf,
  presentedError,
  toGraphqlError,
  toHttpError,
} from '../../../lib/observability/http-errors.js';
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
    // For a GraphQL resolver: the same error, with the extensions graphql-js copies.
    const codes = { 400: 'BAD_REQUEST', 403: 'FORBIDDEN', 404: 'NOT_FOUND', 409: 'CONFLICT' };
    const graphql = toGraphqlError(error) as Error & { extensions?: unknown };
    expect(graphql).toBe(error);
    expect(graphql.extensions).toEqual({
      code: codes[status as keyof typeof codes] ?? 'SERVICE_UNAVAILABLE',
      status,
      error: error.name,
    });
    expect(Object.keys(graphql)).not.toContain('extensions');
  });

  /** An error as the server sends it. */
  const serverError = (code: string, message: string, severity = 'ERROR') =>
    Object.assign(new pg.DatabaseError(message, 0, 'error'), { code, severity });
  /** A Node.js error with a `code`, as sockets raise them. */
  const nodeError = (code: string, message: string) => Object.assign(new Error(message), { code });

  it.each([
    [
      'the server stopping under a query (57P01)',
      serverError('57P01', 'terminating connection due to administrator command', 'FATAL'),
    ],
    ['the server starting up (57P03)', serverError('57P03', 'the database system is starting up')],
    ['a connection exception (08006)', serverError('08006', 'connection failure')],
    ['the socket closed under a query', new Error('Connection terminated unexpectedly')],
    [
      'a client that lost its connection',
      new Error('Client has encountered a connection error and is not queryable'),
    ],
  ])('answers a connection lost under a query, %s, 503 as DatabaseConnectionError', (_l, error) => {
    expect(httpStatusOf(error)).toBe(503);
    const shown = presentedError(error) as Error;
    expect(shown).toBeInstanceOf(DatabaseConnectionError);
    expect(shown.message).toContain(error.message);
    expect(shown.cause).toBe(error);
    const http = toHttpError(error) as HttpException;
    expect(http.getStatus()).toBe(503);
    expect(http.getResponse()).toEqual({
      statusCode: 503,
      error: 'DatabaseConnectionError',
      message: shown.message,
    });
    const graphql = toGraphqlError(error) as Error & { extensions?: unknown };
    expect(graphql).toBeInstanceOf(DatabaseConnectionError);
    expect(graphql.extensions).toEqual({
      code: 'SERVICE_UNAVAILABLE',
      status: 503,
      error: 'DatabaseConnectionError',
    });
  });

  it.each([
    ['an SQL error of this module', new TemplateError('Unknown placeholder {{x}}')],
    ['a unique violation', serverError('23505', 'duplicate key value')],
    ['a statement timeout', serverError('57014', 'canceling statement due to statement timeout')],
    ['a socket error of the application', nodeError('ECONNRESET', 'read ECONNRESET')],
    ['a missing file', nodeError('ENOENT', 'no such file or directory')],
    ['a plain Error', new Error('boom')],
    ['a value that is not an Error', 'boom'],
  ])('has none for %s, which passes through unchanged', (_label, error) => {
    expect(httpStatusOf(error)).toBeUndefined();
    expect(toHttpError(error)).toBe(error);
    expect(toGraphqlError(error)).toBe(error);
    expect((error as { extensions?: unknown }).extensions).toBeUndefined();
    expect(presentedError(error)).toBe(error);
  });
});
