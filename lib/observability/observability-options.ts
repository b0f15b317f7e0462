import type { QueryListener } from '../core/query/query-event.js';

/** Metrics export. Both integrations are optional peer dependencies, loaded only when enabled. */
export interface MetricsOptions {
  /**
   * Export through `prom-client`: `true` for its default registry, or `{ registry }`.
   * Metrics: `pg_tenancy_queries_total`, `pg_tenancy_query_duration_seconds`,
   * `pg_tenancy_pool_connections{state}`, `pg_tenancy_pool_max`. Default: off.
   */
  prometheus?:
    | boolean
    | {
        /** A `prom-client` `Registry`. Default: its global registry. */
        registry?: unknown;
      };
  /**
   * Export through `@opentelemetry/api`: `true` for the global meter provider, or `{ meter }`.
   * Instruments: `pg_tenancy.queries`, `pg_tenancy.query.duration` (s),
   * `pg_tenancy.pool.connections`. Default: off.
   */
  openTelemetry?:
    | boolean
    | {
        /** An OpenTelemetry `Meter`. Default: one from the global meter provider. */
        meter?: unknown;
      };
  /** Label query metrics with the tenant id. Default: `false`. */
  tenantLabel?: boolean;
  /**
   * With `tenantLabel`, the number of distinct tenant label values; later tenants share the
   * value `other`, so 10,000 tenants cannot explode the series count. Default: `100`.
   */
  maxTenantLabels?: number;
}

/** Query hooks, slow-query log and metrics. */
export interface ObservabilityOptions {
  /** Hooks called after every query with SQL, schema, tenant, duration, row count and error. Default: none. */
  onQuery?: QueryListener | QueryListener[];
  /** Log a warning for queries that take at least this long, and keep them for `getSlowQueries()`. `0` disables. Default: `1_000` ms. */
  slowQueryMs?: number;
  /** How many slow queries `DatabaseMonitor.getSlowQueries()` keeps. Default: `100`. */
  slowQueryLimit?: number;
  /** Include bind parameters in the slow-query log and records (they may hold personal data). Default: `false`. */
  logQueryParams?: boolean;
  /** Metrics export. Default: off. */
  metrics?: MetricsOptions;
}

/** Shutdown behaviour. */
export interface ShutdownOptions {
  /**
   * How long in-flight work may run after shutdown begins before its queries are cancelled.
   * Keep it below your orchestrator's grace period (Kubernetes: 30 s). Default: `10_000` ms.
   */
  drainTimeoutMs?: number;
}
