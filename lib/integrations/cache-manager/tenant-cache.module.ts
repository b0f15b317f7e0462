import { Global, Module } from '@nestjs/common';
import { TenantCache } from './tenant-cache.js';
import { TenantCacheInterceptor } from './tenant-cache.interceptor.js';

/**
 * Provides {@link TenantCache} and {@link TenantCacheInterceptor} to every module: import it once, in the application module,
 * beside `CacheModule.register({ isGlobal: true })` (or `registerAsync`) and
 * `DatabaseModule.forRoot({ tenancy })`.
 */
@Global()
@Module({
  providers: [TenantCache, TenantCacheInterceptor],
  exports: [TenantCache, TenantCacheInterceptor],
})
export class TenantCacheModule {}
