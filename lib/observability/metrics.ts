import type pg from 'pg';
import { InvalidOptionsError } from '../shared/errors.js';
import type { StatementCache } from '../connection/statement-cache.js';
import type { ReplicaStatusSource, TenantSyncSource } from './database-monitor.js';
import type { MetricsOptions } from './observability-options.js';
import type { QueryEvent } from '../core/query/query-event.js';
import type { QueryMetrics } from './query-observer.js';
import { poolStats } from './pool-stats.js';

/** Caps distinct tenant label values; the rest share `other`. */
class TenantLabels {
  readonly #seen = new Set<string>();
  constructor(private readonly max: number) {}
  of(tenantId: string | undefined): string {
    if (tenantId === undefined) return '';
    if (this.#seen.has(tenantId)) return tenantId;
    if (this.#seen.size >= this.max) return 'other';
    this.#seen.add(tenantId);
    return tenantId;
  }
}

/**
 * Where a query ran, as a bounded label: a named schema by its name, the default manager as `''`,
 * and every other schema (one per tenant) as one shared value, `tenant_*` (the tenancy prefix and
 * `*`, which no schema name can contain) or `*`. Tenants are told apart only by the capped
 * `tenant` label, so the series count is bounded by the named schemas and `maxTenantLabels`,
 * however many tenants exist.
 */
export class SchemaLabels {
  readonly #tenantValue: string;
  constructor(
    /** Names of the named schemas; read at query time, so late registrations count. */
    private readonly named: ReadonlySet<string>,
    private readonly tenantSchemaPrefix?: string,
  ) {
    this.#tenantValue = `${tenantSchemaPrefix ?? ''}*`;
  }
  of(schema: string | null): string {
    if (schema === null) return '';
    if (this.named.has(schema)) return schema;
    const prefix = this.tenantSchemaPrefix;
    return prefix !== undefined && schema.startsWith(prefix) ? this.#tenantValue : '*';
  }
}

function labelsOf(
  event: QueryEvent,
  schemas: SchemaLabels,
  tenants: TenantLabels | undefined,
): Record<string, string> {
  return {
    schema: schemas.of(event.schema),
    operation: event.operation,
    outcome: event.error ? 'error' : 'ok',
    ...(tenants ? { tenant: tenants.of(event.tenantId) } : {}),
  };
}

/** The statement-cache counters exported, by the label value they get. */
const STATEMENT_RESULTS = ['hits', 'misses', 'evictions', 'reprepared', 'unprepared'] as const;

const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

async function importOptional<T>(name: string): Promise<T> {
  try {
    return (await import(name)) as T;
  } catch (err) {
    throw new InvalidOptionsError(
      `metrics need the optional peer dependency "${name}": run \`npm install ${name}\`, or turn that exporter off.`,
      { cause: err },
    );
  }
}

type PromClient = typeof import('prom-client');

async function prometheus(
  options: MetricsOptions,
  pool: pg.Pool,
  schemas: SchemaLabels,
  tenants: TenantLabels | undefined,
  tenantSync: TenantSyncSource,
  statements: StatementCache | undefined,
  replicas: ReplicaStatusSource | undefined,
): Promise<QueryMetrics> {
  const prom = await importOptional<PromClient & { default?: PromClient }>('prom-client');
  const client = prom.default ?? prom;
  const config = typeof options.prometheus === 'object' ? options.prometheus : {};
  const registry =
    (config.registry as import('prom-client').Registry | undefined) ?? client.register;
  const labelNames = ['schema', 'operation', 'outcome', ...(tenants ? ['tenant'] : [])];
  // One application per registry: replace metrics a previous instance (e.g. a test) registered.
  const fresh = (name: string) => registry.removeSingleMetric(name);
  fresh('pg_tenancy_queries_total');
  const queries = new client.Counter({
    name: 'pg_tenancy_queries_total',
    help: 'Queries run through nestjs-pg-tenancy managers',
    labelNames,
    registers: [registry],
  });
  fresh('pg_tenancy_query_duration_seconds');
  const duration = new client.Histogram({
    name: 'pg_tenancy_query_duration_seconds',
    help: 'Query duration in seconds',
    labelNames,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  fresh('pg_tenancy_pool_connections');
  new client.Gauge({
    name: 'pg_tenancy_pool_connections',
    help: 'Pool connections by state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const stats = poolStats(pool);
      this.set({ state: 'total' }, stats.total);
      this.set({ state: 'idle' }, stats.idle);
      this.set({ state: 'busy' }, stats.total - stats.idle);
      this.set({ state: 'waiting' }, stats.waiting);
    },
  });
  fresh('pg_tenancy_pool_max');
  new client.Gauge({
    name: 'pg_tenancy_pool_max',
    help: 'Most connections the pool opens',
    registers: [registry],
    collect() {
      this.set(poolStats(pool).max);
    },
  });
  fresh('pg_tenancy_registry_synced');
  new client.Gauge({
    name: 'pg_tenancy_registry_synced',
    help: '1 while the tenant registry view is proven current within maxStalenessMs',
    registers: [registry],
    collect() {
      const state = tenantSync.current?.();
      if (state) this.set(state.synced ? 1 : 0);
    },
  });
  fresh('pg_tenancy_registry_lag_seconds');
  new client.Gauge({
    name: 'pg_tenancy_registry_lag_seconds',
    help: 'Age of the last proof that the tenant registry view is complete',
    registers: [registry],
    collect() {
      const lag = tenantSync.current?.()?.lagMs;
      if (lag !== undefined && lag !== null) this.set(lag / 1000);
    },
  });
  if (statements) {
    fresh('pg_tenancy_prepared_statements_total');
    new client.Counter({
      name: 'pg_tenancy_prepared_statements_total',
      help: 'Prepared-statement cache counters by result: hits, misses, evictions, reprepared, unprepared',
      labelNames: ['result'],
      registers: [registry],
      collect() {
        const stats = statements.stats();
        this.reset();
        for (const result of STATEMENT_RESULTS) this.inc({ result }, stats[result]);
      },
    });
    fresh('pg_tenancy_prepared_statements');
    new client.Gauge({
      name: 'pg_tenancy_prepared_statements',
      help: 'Statements prepared on the open pool connections',
      registers: [registry],
      collect() {
        this.set(statements.stats().statements);
      },
    });
  }
  fresh('pg_tenancy_replica_up');
  fresh('pg_tenancy_replica_lag_seconds');
  if (replicas) {
    new client.Gauge({
      name: 'pg_tenancy_replica_up',
      help: '1 while a streaming replica serves reads (reachable, in recovery, within replicas.maxLagMs)',
      labelNames: ['replica', 'state'],
      registers: [registry],
      collect() {
        this.reset();
        for (const r of replicas.statuses()) {
          this.set({ replica: r.name, state: r.state }, r.state === 'up' ? 1 : 0);
        }
      },
    });
    new client.Gauge({
      name: 'pg_tenancy_replica_lag_seconds',
      help: "How far a streaming replica's replay is behind the primary, as of its last check",
      labelNames: ['replica'],
      registers: [registry],
      collect() {
        this.reset();
        for (const r of replicas.statuses()) {
          if (r.lagMs !== null) this.set({ replica: r.name }, r.lagMs / 1000);
        }
      },
    });
  }
  return {
    record(event) {
      const labels = labelsOf(event, schemas, tenants);
      queries.inc(labels);
      duration.observe(labels, event.durationMs / 1000);
    },
  };
}

type OtelApi = typeof import('@opentelemetry/api');

async function openTelemetry(
  options: MetricsOptions,
  pool: pg.Pool,
  schemas: SchemaLabels,
  tenants: TenantLabels | undefined,
  tenantSync: TenantSyncSource,
  statements: StatementCache | undefined,
  replicas: ReplicaStatusSource | undefined,
): Promise<QueryMetrics> {
  const config = typeof options.openTelemetry === 'object' ? options.openTelemetry : {};
  let meter = config.meter as import('@opentelemetry/api').Meter | undefined;
  if (!meter) {
    const api = await importOptional<OtelApi>('@opentelemetry/api');
    meter = api.metrics.getMeter('nestjs-pg-tenancy');
  }
  const queries = meter.createCounter('pg_tenancy.queries', {
    description: 'Queries run through nestjs-pg-tenancy managers',
  });
  const duration = meter.createHistogram('pg_tenancy.query.duration', {
    description: 'Query duration',
    unit: 's',
    advice: { explicitBucketBoundaries: DURATION_BUCKETS },
  });
  meter
    .createObservableGauge('pg_tenancy.pool.connections', {
      description: 'Pool connections by state',
    })
    .addCallback((result) => {
      const stats = poolStats(pool);
      result.observe(stats.total, { state: 'total' });
      result.observe(stats.idle, { state: 'idle' });
      result.observe(stats.total - stats.idle, { state: 'busy' });
      result.observe(stats.waiting, { state: 'waiting' });
    });
  meter
    .createObservableGauge('pg_tenancy.registry.lag', {
      description: 'Age of the last proof that the tenant registry view is complete',
      unit: 's',
    })
    .addCallback((result) => {
      const state = tenantSync.current?.();
      if (state?.lagMs != null)
        result.observe(state.lagMs / 1000, { synced: String(state.synced) });
    });
  if (statements) {
    meter
      .createObservableCounter('pg_tenancy.prepared_statements', {
        description:
          'Prepared-statement cache counters by result: hits, misses, evictions, reprepared, unprepared',
      })
      .addCallback((result) => {
        const stats = statements.stats();
        for (const name of STATEMENT_RESULTS) result.observe(stats[name], { result: name });
      });
  }
  if (replicas) {
    meter
      .createObservableGauge('pg_tenancy.replica.lag', {
        description: "How far a streaming replica's replay is behind the primary",
        unit: 's',
      })
      .addCallback((result) => {
        for (const r of replicas.statuses()) {
          if (r.lagMs !== null) result.observe(r.lagMs / 1000, { replica: r.name, state: r.state });
        }
      });
  }
  return {
    record(event) {
      const attributes = labelsOf(event, schemas, tenants);
      queries.add(1, attributes);
      duration.record(event.durationMs / 1000, attributes);
    },
  };
}

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
  const exporters: QueryMetrics[] = [];
  if (options.prometheus) {
    exporters.push(
      await prometheus(options, pool, schemas, tenants, tenantSync, statements, replicas),
    );
  }
  if (options.openTelemetry) {
    exporters.push(
      await openTelemetry(options, pool, schemas, tenants, tenantSync, statements, replicas),
    );
  }
  return exporters;
}
