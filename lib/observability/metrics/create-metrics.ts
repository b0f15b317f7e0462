import type pg from 'pg';
import { InvalidOptionsError } from '../../shared/errors.js';
import type { StatementCache } from '../../connection/statement-cache.js';
import type { ReplicaStatusSource, TenantSyncSource } from '../database-monitor.js';
import type { MetricsOptions } from '../observability-options.js';
import type { QueryMetrics } from '../query-observer.js';
import { SchemaLabels, TenantLabels } from './metric-labels.js';
import type { MetricSources } from './metric-sources.js';
import { openTelemetryMetrics } from './opentelemetry.js';
import { prometheusMetrics } from './prometheus.js';

/** The exporters `options` enables (none by default); optional packages are imported only then. */
export async function createMetrics(
  options: MetricsOptions | undefined,
  pool: pg.Pool,
  schemas: SchemaLabels = new SchemaLabels(new Set()),
  tenantSync: TenantSyncSource = {},
  statements?: StatementCache,
  replicas?: ReplicaStatusSource,
): Promise<QueryMetrics[]> {
  if (!options) return [];
  const max = options.maxTenantLabels ?? 100;
  if (!Number.isInteger(max) || max < 0) {
    throw new InvalidOptionsError('metrics.maxTenantLabels must be a non-negative integer.');
  }
  const tenants = options.tenantLabel ? new TenantLabels(max) : undefined;
  const sources: MetricSources = {
    options,
    pool,
    schemas,
    tenants,
    tenantSync,
    statements,
    replicas,
  };
  const exporters: QueryMetrics[] = [];
  if (options.prometheus) exporters.push(await prometheusMetrics(sources));
  if (options.openTelemetry) exporters.push(await openTelemetryMetrics(sources));
  return exporters;
}
