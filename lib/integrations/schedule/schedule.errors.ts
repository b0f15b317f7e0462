import { PgTenancyError } from '../../shared/errors.js';

/**
 * A `@ForEachTenant()` method was called on an instance Nest did not build with
 * `TenantScheduleModule` in the application: without it there is no runner to fan the call
 * out over the tenants, and running it once with no tenant would be wrong.
 */
export class TenantScheduleNotWiredError extends PgTenancyError {
  constructor(
    /** The job whose method was called. */
    readonly job: string,
  ) {
    super(
      `${job} is a @ForEachTenant() method, but its instance has no tenant schedule runner: import ` +
        'TenantScheduleModule (from nestjs-pg-tenancy/schedule) in the application module and let Nest ' +
        'build the class (a provider), rather than creating it with `new`.',
    );
  }
}
