import { PgTenancyError } from '../../shared/errors.js';

/**
 * A `TenantClient` was asked to send a message outside any tenant's work, and the call did not
 * say which tenant it is for or that it is for none. Nothing was sent: a message with no tenant
 * would be refused by the receiver, and a default tenant would be a cross-tenant bug.
 */
export class MessageWithoutTenantError extends PgTenancyError {
  constructor(
    /** The message's pattern, as the client was given it. */
    readonly pattern: string,
  ) {
    super(
      `Message ${pattern} is sent outside any tenant's work, so it would carry no tenant. Send it ` +
        'from inside a tenant (a request, a job, TenantAdmission.run), name the tenant with ' +
        '{ tenantId }, or pass { withoutTenant: true } when its handler is marked @NoTenant().',
    );
  }
}

/**
 * The receiving service refused a message for its tenant, as it would refuse a request: the
 * message named no tenant, a malformed one, one `tenancy.authorize` refused, an unknown or
 * dropped one, a suspended one, or the service is shutting down. `reason` is the name of the
 * error the receiver failed with (`'TenantSuspendedError'`, …); `message` is its message.
 */
export class TenantMessageRefusedError extends PgTenancyError {
  constructor(
    /** The receiver's error name, e.g. `'TenantSuspendedError'` or `'TenantRequiredError'`. */
    readonly reason: string,
    message: string,
    /** The tenant the receiver refused, when it named one. */
    readonly tenantId?: string,
  ) {
    super(message);
  }
}
