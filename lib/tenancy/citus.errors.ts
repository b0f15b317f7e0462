import { PgTenancyError } from '../errors.js';

/**
 * A Citus operation was asked for (`tenancy.citus: true`, `distribute`, `placements`, `move`)
 * and the database cannot do it: the `citus` extension is missing or older than 12 (schema-based
 * sharding), the connection reaches a worker instead of the coordinator, or no worker is
 * registered. The message says which, and what to do.
 */
export class CitusUnavailableError extends PgTenancyError {}

/**
 * A tenant cannot be moved as asked: its schema is not distributed yet (run `distribute` first),
 * or the target is not an active node of the cluster. Nothing was changed.
 */
export class TenantPlacementError extends PgTenancyError {
  constructor(
    /** The tenant that was to be moved. */
    readonly tenantId: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
