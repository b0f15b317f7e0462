/**
 * `nestjs-pg-tenancy/cache-manager` — a cache (`@nestjs/cache-manager`) whose keys are the
 * current tenant's: `TenantCache`, `TenantCacheInterceptor` and `TenantCacheModule`. Guide: `docs/caching.md`.
 *
 * @module cache-manager
 */
export { TenantCache, type CacheEntry, type CacheView } from './tenant-cache.js';
export { TenantCacheInterceptor } from './tenant-cache.interceptor.js';
export { TenantCacheModule } from './tenant-cache.module.js';
