// What every exporter reads: the pool, the labels, and the optional sources of gauges.
import type pg from 'pg';
import { InvalidOptionsError } from '../../shared/errors.js';
import type { StatementCache } from '../../connection/statement-cache.js';
import type { ReplicaStatusSource, TenantSyncSource } from '../database-monitor.js';
import type { MetricsOptions } from '../observability-options.js';
import { poolStats } from '../pool-stats.js';
import type { SchemaLabels, TenantLabels } from './metric-labels.js';

/** What an exporter measures, and how it labels queries. */
export interface MetricSources {
  readonly options: MetricsOptions;
  readonly pool: pg.Pool;
  readonly schemas: SchemaLabels;
  /** Set when queries carry a (capped) `tenant` label. */
  readonly tenants: TenantLabels | undefined;
  readonly tenantSync: TenantSyncSource;
  readonly statements: StatementCache | undefined;
  readonly replicas: ReplicaStatusSource | undefined;
}

/** The statement-cache counters exported, by the label value they get. */
export const STATEMENT_RESULTS = [
  'hits',
  'misses',
  'evictions',
  'reprepared',
  'unprepared',
] as const;

/** How checkouts for a schema were served (`PoolAffinityStats`), by the label value they get. */
export const AFFINITY_SERVED = ['preferred', 'warm', 'stolen'] as const;

/** The pool's connections by state (`total`, `idle`, `busy`, `waiting`), as every exporter labels them. */
export function connectionsByState(pool: pg.Pool): readonly { state: string; count: number }[] {
  const stats = poolStats(pool);
  return [
    { state: 'total', count: stats.total },
    { state: 'idle', count: stats.idle },
    { state: 'busy', count: stats.total - stats.idle },
    { state: 'waiting', count: stats.waiting },
  ];
}

/** Query duration histogram buckets, in seconds. */
export const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Imports an optional peer dependency, or says how to install it. */
export async function importOptional<T>(name: string): Promise<T> {
  try {
    return (await import(name)) as T;
  } catch (err) {
    throw new InvalidOptionsError(
      `metrics need the optional peer dependency "${name}": run \`npm install ${name}\`, or turn that exporter off.`,
      { cause: err },
    );
  }
}

/**
 * The meter of the `openTelemetry` metrics option: the one it gives, else the global
 * `nestjs-pg-tenancy` meter of `@opentelemetry/api`.
 */
export async function openTelemetryMeter(
  openTelemetry: MetricsOptions['openTelemetry'],
): Promise<import('@opentelemetry/api').Meter> {
  const config = typeof openTelemetry === 'object' ? openTelemetry : {};
  const meter = config.meter as import('@opentelemetry/api').Meter | undefined;
  if (meter) return meter;
  const api = await importOptional<typeof import('@opentelemetry/api')>('@opentelemetry/api');
  return api.metrics.getMeter('nestjs-pg-tenancy');
}
