import { SetMetadata } from '@nestjs/common';

/** Metadata key set by {@link NoTenant}. */
export const NO_TENANT_KEY = 'nestjs-pg-tenancy:no-tenant';

/**
 * Marks a controller or route that runs without a tenant (health checks, sign-up, the tenant
 * admin API): the interceptor skips resolution there, and runs the handler without a tenant even
 * when `TenantMiddleware` (which runs before routing) resolved one. `@InjectTenantDb()` throws
 * inside it.
 */
export const NoTenant = (): MethodDecorator & ClassDecorator => SetMetadata(NO_TENANT_KEY, true);
