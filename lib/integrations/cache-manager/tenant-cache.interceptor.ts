import { Inject, Injectable, type ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { CACHE_MANAGER, CacheInterceptor } from '@nestjs/cache-manager';
import type { Cache } from 'cache-manager';
import { TenantAdmission } from '../../module/tenant-admission.js';

/**
 * `@nestjs/cache-manager`'s `CacheInterceptor` with the tenant in the key of every cached
 * response (`tenant:<id>:http:<url>`). The plain interceptor keys a response by its URL only,
 * so with a tenant named by a header or a subdomain, two tenants' `GET /projects` would share
 * one cached response. Without a tenant context (a `@NoTenant()` route, or an interceptor
 * that ran before the tenant was known) nothing is cached: the handler runs every time.
 * Use it per controller or route (`@UseInterceptors(TenantCacheInterceptor)`), where the
 * tenant is already known; `@CacheKey()` and `@CacheTTL()` work as with `CacheInterceptor`.
 */
@Injectable()
export class TenantCacheInterceptor extends CacheInterceptor {
  constructor(
    @Inject(CACHE_MANAGER) cacheManager: Cache,
    reflector: Reflector,
    private readonly admission: TenantAdmission,
  ) {
    super(cacheManager, reflector);
  }

  /** The plain interceptor's key, in the current tenant's namespace; none without a tenant. */
  protected override async trackBy(context: ExecutionContext): Promise<string | undefined> {
    const key = await super.trackBy(context);
    if (!key) return undefined;
    const tenantId = this.admission.currentTenantId();
    return tenantId === undefined ? undefined : `tenant:${tenantId}:http:${key}`;
  }
}
