import { PgTenancyError } from '../../shared/errors.js';

/**
 * The role named by `tenancy.pooled.role` exists and is a superuser or has `BYPASSRLS`: row-level
 * security would not hold pooled tenants' statements to their rows, so the tier refuses it.
 */
export class PooledRoleUnsafeError extends PgTenancyError {
  constructor(
    /** The role refused. */
    readonly role: string,
  ) {
    super(
      `The pooled tier's role "${role}" is a superuser or has BYPASSRLS, so row-level security would not hold pooled tenants to their rows. ` +
        `Run ALTER ROLE "${role}" NOSUPERUSER NOBYPASSRLS, or set tenancy.pooled.role to a role the library may create.`,
    );
  }
}

/** `create(id, { tier: 'pooled' })` or a move to the pooled tier, with `tenancy.pooled` off. */
export class PooledTierDisabledError extends PgTenancyError {
  constructor() {
    super(
      "The pooled tier is off: set tenancy.pooled (true, or { schema, role }) in the module options to place tenants in tier 'pooled'.",
    );
  }
}
