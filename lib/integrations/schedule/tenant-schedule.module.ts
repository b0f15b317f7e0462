import { Global, Module } from '@nestjs/common';
import { TenantScheduleRunner } from './tenant-schedule.runner.js';

/**
 * Makes `@ForEachTenant()` methods work: import it once, in the application module, beside
 * `DatabaseModule.forRoot({ tenancy })` (and `ScheduleModule.forRoot()` for `@Cron()`). It is
 * global, so every module's providers reach its runner.
 */
@Global()
@Module({ providers: [TenantScheduleRunner], exports: [TenantScheduleRunner] })
export class TenantScheduleModule {}
