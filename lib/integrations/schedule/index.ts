/**
 * `nestjs-pg-tenancy/schedule` — scheduled jobs (`@nestjs/schedule`) that run for every tenant:
 * `@ForEachTenant()` and `TenantScheduleModule`. Guide: `docs/schedules.md`.
 *
 * @module schedule
 */
export { ForEachTenant, type ForEachTenantOptions } from './for-each-tenant.decorator.js';
export { TenantScheduleModule } from './tenant-schedule.module.js';
export {
  TenantScheduleRunner,
  type TenantScheduleFailure,
  type TenantScheduleSummary,
} from './tenant-schedule.runner.js';
export { TenantScheduleNotWiredError } from './schedule.errors.js';
export type { TenantRunOutcome } from '../../observability/metrics/run-metrics.js';
