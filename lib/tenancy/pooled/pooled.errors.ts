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

/**
 * The pooled schema's migration failed: every pooled tenant shares it, so the failure is one,
 * reported once (`TenantMigrationSummary.pooled.error`) and recorded as each pooled tenant's
 * `lastError`. Schema tenants are migrated all the same. The failed file was rolled back.
 */
export class PooledMigrationError extends PgTenancyError {
  constructor(
    /** The pooled schema. */
    readonly schema: string,
    cause: unknown,
  ) {
    super(
      `Migrating the pooled schema "${schema}" failed, so every pooled tenant stays at its former files: ${
        cause instanceof Error ? cause.message : String(cause)
      }. Fix the file (or the cause) and migrate again (migrateAll(), \`migrate --tenants\`).`,
      { cause },
    );
  }
}
