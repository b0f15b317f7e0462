import { PgTenancyError } from '../../shared/errors.js';

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

/**
 * A tenant migration file holds what Citus refuses on a distributed schema's tables, found before
 * the tenant is created (inside `TenantCreationError`; nothing was created): index DDL sharing a
 * file with other statements, or a foreign key to a table outside the tenant's schema that is not
 * a Citus reference table. The message names the file and what to write instead.
 */
export class CitusMigrationError extends PgTenancyError {
  constructor(
    /** The migration file's name, e.g. `002_tasks.sql`. */
    readonly file: string,
    message: string,
  ) {
    super(message);
  }
}
