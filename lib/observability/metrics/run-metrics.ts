// Counts of work the application starts for each tenant outside requests (a scheduled job's
// fan-out over the tenants), in the exporters the `metrics` option enables. The integration that
// runs such work reports here; this layer knows nothing of schedulers.
import type { MetricsOptions } from '../observability-options.js';
import { importOptional, openTelemetryMeter } from './metric-sources.js';

/**
 * How one tenant's run of a job ended: `ok`, `failed` (it threw), `skipped` (the tenant was
 * suspended or dropped before its turn), `stopped` (not started: shutdown began); `overlapped`
 * counts a whole run not started because the previous one was still going.
 */
export type TenantRunOutcome = 'ok' | 'failed' | 'skipped' | 'stopped' | 'overlapped';

/** Records per-tenant runs of a named job. Labels: `job` and `outcome`, never the tenant id. */
export interface TenantRunMetrics {
  record(job: string, outcome: TenantRunOutcome): void;
}

type PromClient = typeof import('prom-client');

/**
 * The counters of per-tenant runs in the exporters `options` enables (none: a recorder that
 * does nothing): `pg_tenancy_scheduled_runs_total{job,outcome}` in Prometheus,
 * `pg_tenancy.scheduled_runs` in OpenTelemetry.
 */
export async function createRunMetrics(
  options: MetricsOptions | undefined,
): Promise<TenantRunMetrics> {
  const recorders: TenantRunMetrics[] = [];
  if (options?.prometheus) {
    const prom = await importOptional<PromClient & { default?: PromClient }>('prom-client');
    const client = prom.default ?? prom;
    const config = typeof options.prometheus === 'object' ? options.prometheus : {};
    const registry =
      (config.registry as import('prom-client').Registry | undefined) ?? client.register;
    // One application per registry, as for the query metrics: replace an earlier instance's.
    registry.removeSingleMetric('pg_tenancy_scheduled_runs_total');
    const runs = new client.Counter({
      name: 'pg_tenancy_scheduled_runs_total',
      help: "Runs of scheduled jobs for one tenant each, by outcome: ok, failed, skipped (tenant suspended or dropped), stopped (shutdown began), overlapped (the job's previous run was still going)",
      labelNames: ['job', 'outcome'],
      registers: [registry],
    });
    recorders.push({ record: (job, outcome) => runs.inc({ job, outcome }) });
  }
  if (options?.openTelemetry) {
    const meter = await openTelemetryMeter(options.openTelemetry);
    const runs = meter.createCounter('pg_tenancy.scheduled_runs', {
      description: 'Runs of scheduled jobs for one tenant each, by outcome',
    });
    recorders.push({ record: (job, outcome) => runs.add(1, { job, outcome }) });
  }
  return {
    record(job, outcome) {
      for (const r of recorders) r.record(job, outcome);
    },
  };
}
