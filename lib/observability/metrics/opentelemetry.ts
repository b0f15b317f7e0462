// The OpenTelemetry exporter (@opentelemetry/api, an optional peer dependency).
import type { QueryMetrics } from '../query-observer.js';
import { queryLabels } from './metric-labels.js';
import { affinityStats } from '../../connection/pool-affinity.js';
import {
  AFFINITY_SERVED,
  connectionsByState,
  DURATION_BUCKETS,
  openTelemetryMeter,
  STATEMENT_RESULTS,
  type MetricSources,
} from './metric-sources.js';

/** Creates the OpenTelemetry instruments (on the given or the global meter) and returns the query recorder. */
export async function openTelemetryMetrics(sources: MetricSources): Promise<QueryMetrics> {
  const { options, pool, schemas, tenants, tenantSync, statements, replicas } = sources;
  const meter = await openTelemetryMeter(options.openTelemetry);
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
      for (const { state, count } of connectionsByState(pool)) result.observe(count, { state });
    });
  if (affinityStats(pool)) {
    meter
      .createObservableCounter('pg_tenancy.pool.affinity_checkouts', {
        description:
          'Checkouts for a tenant schema by the connection that served them: preferred, warm, stolen',
      })
      .addCallback((result) => {
        const stats = affinityStats(pool);
        if (stats) for (const served of AFFINITY_SERVED) result.observe(stats[served], { served });
      });
    meter
      .createObservableCounter('pg_tenancy.pool.recycled', {
        description:
          'Connections replaced for having served more schemas than pool.backendMemory allows',
      })
      .addCallback((result) => result.observe(affinityStats(pool)?.recycled ?? 0));
  }
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
  meter
    .createObservableGauge('pg_tenancy.tenants', {
      description: "Tenants in this instance's registry view, by tier (schema, pooled) and status",
    })
    .addCallback((result) => {
      for (const { tier, status, count } of tenantSync.counts?.() ?? [])
        result.observe(count, { tier, status });
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
      const attributes = queryLabels(event, schemas, tenants);
      queries.add(1, attributes);
      duration.record(event.durationMs / 1000, attributes);
    },
  };
}
