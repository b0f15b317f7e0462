/**
 * `nestjs-pg-tenancy/observability` — **stable.** The monitor (pool, statements, replicas, tenant
 * sync, slow queries), the query hook's event, and the options of `observability` and `metrics`.
 * Health checks for `@nestjs/terminus` are on `/terminus`.
 *
 * @module observability
 */
export {
  DatabaseMonitor,
  type PingResult,
  type TenantCount,
  type TenantSyncStatus,
} from './database-monitor.js';
export type { PoolStats } from './pool-stats.js';
export type { SlowQuery } from './query-observer.js';
export type { QueryEvent, QueryListener } from '../core/query/query-event.js';
export type { MetricsOptions, ObservabilityOptions } from './observability-options.js';
export type { StatementCacheStats } from '../connection/statement-cache.js';
export type { PoolAffinityStats } from '../connection/pool-affinity.js';
export type { ReplicaState, ReplicaStatus } from '../connection/replicas/replica-health.js';
export {
  TENANT_ID_ATTRIBUTE,
  TenantConsoleLogger,
  TenantSpanProcessor,
  type AttributeSink,
  type CurrentTenantSource,
} from './tenant-telemetry.js';
