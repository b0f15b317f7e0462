import { PgTenancyError } from '../shared/errors.js';

/**
 * Base of the errors about a request's tenant. `status` is the HTTP answer the interceptor (and
 * the exception filter) gives: the message is safe to show a client and never echoes raw input.
 */
export abstract class TenantError extends PgTenancyError {
  /** The HTTP status this error maps to. */
  abstract readonly status: 400 | 403 | 404 | 409;
}

/** The tenant id does not match `tenancy.idPattern`. No SQL runs for it. HTTP 400. */
export class InvalidTenantIdError extends TenantError {
  readonly status = 400;
  constructor(pattern: RegExp) {
    super(`The tenant id is malformed: it must match ${pattern.source}.`);
  }
}

/** The route needs a tenant and the request names none. HTTP 400. */
export class TenantRequiredError extends TenantError {
  readonly status = 400;
  constructor(hint: string) {
    super(`This route needs a tenant, and the request names none: ${hint}.`);
  }
}

/** No tenant has this id (or it is still being created). HTTP 404. */
export class TenantNotFoundError extends TenantError {
  readonly status = 404;
  constructor(
    /** The tenant id (validated, so safe to show). */
    readonly tenantId: string,
    /** `cause`: what the work of a request that raced a drop failed with. */
    options?: { cause?: unknown },
  ) {
    // The id has passed validation, so it is safe to repeat.
    super(`Unknown tenant "${tenantId}".`, options);
  }
}

/** The tenant exists but is suspended. HTTP 403. */
export class TenantSuspendedError extends TenantError {
  readonly status = 403;
  constructor(
    /** The tenant id (validated, so safe to show). */
    readonly tenantId: string,
  ) {
    super(`Tenant "${tenantId}" is suspended.`);
  }
}

/**
 * `tenancy.authorize` refused this request access to the tenant (it returned something other
 * than `true`, or threw). No tenant SQL ran. HTTP 403.
 */
export class TenantAccessDeniedError extends TenantError {
  readonly status = 403;
  constructor(
    /** The tenant the request asked for (validated, so safe to log). */
    readonly tenantId: string,
    options?: { cause?: unknown },
  ) {
    // The id has passed validation, so it is safe to repeat.
    super(`Access to tenant "${tenantId}" is denied for this request.`, options);
  }
}

/** `TenantService.create()` for an id that already exists. HTTP 409. */
export class TenantAlreadyExistsError extends TenantError {
  readonly status = 409;
  /**
   * @param state the existing row's status, when it explains the conflict (a tenant left
   *   `provisioning` or `dropping` by a crash, which `repair` finishes).
   */
  constructor(
    /** The id that already exists. */
    readonly tenantId: string,
    readonly state?: string,
  ) {
    super(
      state === 'provisioning' || state === 'dropping'
        ? `Tenant "${tenantId}" already exists and is ${state === 'dropping' ? 'being dropped' : 'still being created'}; if no other process is at work on it, \`tenants repair ${tenantId}\` (TenantService.repair) finishes it.`
        : `Tenant "${tenantId}" already exists.`,
    );
  }
}

/**
 * `@InjectTenantDb()` was used outside a tenant context: outside a request that went through the
 * tenant interceptor or middleware, on a `@NoTenant()` route, or in a job that did not use
 * `TenantService.run()`.
 */
export class TenantContextMissingError extends PgTenancyError {
  constructor() {
    super(
      'No tenant in the current context. Inside requests the TenantInterceptor (or TenantMiddleware) sets it; ' +
        'in jobs and scripts use tenantService.run(id, fn) or tenantService.db(id).',
    );
  }
}

/**
 * Creating a tenant failed. `remains` says what is left: nothing (the one transaction rolled
 * back), or a `provisioning` row with its schema when a no-transaction migration file failed
 * afterwards (finish it with `repair`, or remove it with `drop`).
 */
export class TenantCreationError extends PgTenancyError {
  constructor(
    /** The tenant that could not be created. */
    readonly tenantId: string,
    cause: unknown,
    /**
     * What is left: `nothing` (all undone), or `provisioning` (schema and transactional migrations
     * committed; `tenants repair` finishes the tenant, `tenants drop` removes it).
     */
    readonly remains: 'nothing' | 'provisioning' = 'nothing',
  ) {
    super(
      `Creating tenant "${tenantId}" failed ${
        remains === 'nothing'
          ? 'and was undone (no registry row, no schema remain)'
          : `after its schema and transactional migrations were committed: the tenant remains in state "provisioning" (not served); fix the cause, then \`tenants repair ${tenantId}\` finishes it, or \`tenants drop ${tenantId}\` removes it`
      }: ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
  }
}

/** `migrateAll()` finished with failed tenants and `failOnMigrationError` is on. */
export class TenantMigrationsFailedError extends PgTenancyError {
  constructor(
    /** Each failed tenant and its error message. */
    readonly failed: readonly {
      /** The tenant. */
      tenantId: string;
      /** Why its migration failed. */
      error: string;
    }[],
  ) {
    super(
      `Migrations failed for ${failed.length} tenant(s): ${failed
        .slice(0, 5)
        .map((f) => `${f.tenantId} (${f.error})`)
        .join('; ')}${failed.length > 5 ? '; …' : ''}. The other tenants were migrated.`,
    );
  }
}
