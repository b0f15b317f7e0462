// The Prometheus exporter (prom-client, an optional peer dependency).
import type { QueryMetrics } from '../query-observer.js';
import { poolStats } from '../pool-stats.js';
import { affinityStats } from '../../connection/pool-affinity.js';
import { queryLabels } from './metric-labels.js';
import {
  AFFINITY_SERVED,
  connectionsByState,
  DURATION_BUCKETS,
  importOptional,
  STATEMENT_RESULTS,
  type MetricSources,
} from './metric-sources.js';

type PromClient = typeof import('prom-client');

/** Registers the Prometheus metrics (prom-client) and returns the query recorder. */
export async function prometheusMetrics(sources: MetricSources): Promise<QueryMetrics> {
  const { options, pool, schemas, tenants, tenantSync, statements, replicas } = sources;
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
      for (const { state, count } of connectionsByState(pool)) this.set({ state }, count);
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
  fresh('pg_tenancy_pool_affinity_checkouts_total');
  fresh('pg_tenancy_pool_recycled_total');
  if (affinityStats(pool)) {
    new client.Counter({
      name: 'pg_tenancy_pool_affinity_checkouts_total',
      help: 'Checkouts for a tenant schema by the connection that served them: preferred, warm (had served the schema), stolen (any idle one)',
      labelNames: ['served'],
      registers: [registry],
      collect() {
        const stats = affinityStats(pool);
        this.reset();
        if (stats) for (const served of AFFINITY_SERVED) this.inc({ served }, stats[served]);
      },
    });
    new client.Counter({
      name: 'pg_tenancy_pool_recycled_total',
      help: 'Connections replaced for having served more schemas than pool.backendMemory allows',
      registers: [registry],
      collect() {
        this.reset();
        this.inc(affinityStats(pool)?.recycled ?? 0);
      },
    });
  }
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
  fresh('pg_tenancy_tenants');
  new client.Gauge({
    name: 'pg_tenancy_tenants',
    help: "Tenants in this instance's registry view, by tier (schema, pooled) and status",
    labelNames: ['tier', 'status'],
    registers: [registry],
    collect() {
      const counts = tenantSync.counts?.();
      if (!counts) return;
      this.reset();
      for (const { tier, status, count } of counts) this.set({ tier, status }, count);
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
      const labels = queryLabels(event, schemas, tenants);
      queries.inc(labels);
      duration.observe(labels, event.durationMs / 1000);
    },
  };
}
