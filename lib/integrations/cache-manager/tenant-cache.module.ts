import { Global, Module } from '@nestjs/common';
import { TenantCache } from './tenant-cache.js';

/**
 * Provides {@link TenantCache} to every module: import it once, in the application module,
 * beside `CacheModule.register({ isGlobal: true })` (or `registerAsync`) and
 * `DatabaseModule.forRoot({ tenancy })`.
 */
@Global()
@Module({ providers: [TenantCache], exports: [TenantCache] })
export class TenantCacheModule {}
