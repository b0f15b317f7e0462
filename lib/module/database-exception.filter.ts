import {
  Catch,
  HttpException,
  Optional,
  type ArgumentsHost,
  type ExceptionFilter,
} from '@nestjs/common';
import { BaseExceptionFilter, HttpAdapterHost } from '@nestjs/core';
import { PgTenancyError } from '../shared/errors.js';
import { httpStatusOf, presentedError, toGraphqlError } from '../observability/http-errors.js';

/**
 * Maps this module's typed errors to HTTP answers (opt-in):
 * - `PoolAcquireTimeoutError`, `DatabaseConnectionError` (database unreachable, or the connection
 *   lost under a query: answered as a `DatabaseConnectionError`), `DatabaseShuttingDownError`,
 *   `PoolClosedError` → 503 with `Retry-After`
 * - tenant errors → their status (400, 403, 404, 409)
 * Anything else goes to Nest's default handling. In a GraphQL resolver the same errors are
 * returned to the driver with `extensions` (`code`, `status`, `error`) instead.
 *
 * @example app.useGlobalFilters(new DatabaseExceptionFilter(app.get(HttpAdapterHost)));
 * @example providers: [{ provide: APP_FILTER, useClass: DatabaseExceptionFilter }]
 */
@Catch()
export class DatabaseExceptionFilter extends BaseExceptionFilter implements ExceptionFilter {
  /** Seconds put in `Retry-After` on 503 answers. Default: `1`. */
  retryAfterSeconds = 1;

  constructor(@Optional() private readonly adapterHost?: HttpAdapterHost) {
    super(adapterHost?.httpAdapter);
  }

  /**
   * Answers the module's errors with their HTTP status and message (and `Retry-After` on 503);
   * passes anything else to Nest's base filter.
   */
  override catch(exception: unknown, host: ArgumentsHost): unknown {
    // A GraphQL resolver's error is answered by the GraphQL driver, not written to a response.
    if (host.getType<string>() === 'graphql') return this.#graphqlError(exception);
    const error = presentedError(
      exception instanceof HttpException && exception.cause instanceof PgTenancyError
        ? exception.cause
        : exception,
    );
    const status = httpStatusOf(error);
    const adapter = this.adapterHost?.httpAdapter;
    if (host.getType() !== 'http' || status === undefined || !adapter) {
      return super.catch(exception, host);
    }
    const response = host.switchToHttp().getResponse<unknown>();
    if (status === 503) adapter.setHeader(response, 'Retry-After', String(this.retryAfterSeconds));
    const { name, message } = error as Error;
    adapter.reply(response, { statusCode: status, error: name, message }, status);
  }

  /**
   * For a GraphQL resolver: the module's errors with their GraphQL `extensions` (returned, so the
   * driver reports them); `undefined` for anything else, which Nest then logs and rethrows as
   * without this filter.
   */
  #graphqlError(exception: unknown): unknown {
    return httpStatusOf(exception) === undefined ? undefined : toGraphqlError(exception);
  }
}
