import { Inject, Injectable, Logger, Optional, type OnModuleInit } from '@nestjs/common';
import { DrainController } from '../../connection/drain-controller.js';
import { TenantService } from '../../tenancy/tenant.service.js';
import { TenantAdmission } from '../../module/tenant-admission.js';
import { DATABASE_MODULE_OPTIONS } from '../../module/database.tokens.js';
import type { DatabaseModuleOptions } from '../../module/database-options.interface.js';
import {
  createRunMetrics,
  type TenantRunMetrics,
} from '../../observability/metrics/run-metrics.js';

/** One tenant's run that threw, as {@link TenantScheduleSummary} lists it. */
export interface TenantScheduleFailure {
  /** The tenant the method ran for. */
  readonly tenantId: string;
  /** What the method threw. */
  readonly error: unknown;
}

/** What one run of a `@ForEachTenant()` method did; the method resolves with it. */
export interface TenantScheduleSummary {
  /** The job's name, as in logs and metrics. */
  readonly job: string;
  /** `true` when this run did nothing because the previous run was still going. */
  readonly overlapped: boolean;
  /** Tenants whose run finished, in the order they finished. */
  readonly ok: readonly string[];
  /** Tenants whose run threw (each also logged, with the tenant id). */
  readonly failed: readonly TenantScheduleFailure[];
  /** Tenants suspended or dropped after the run began and before their turn: not run. */
  readonly skipped: readonly string[];
  /** Tenants not run because the application began shutting down before their turn. */
  readonly stopped: readonly string[];
  /** Wall-clock time of the run, in milliseconds. */
  readonly durationMs: number;
}

/** @internal One call of a `@ForEachTenant()` method, as the decorator hands it over. */
export interface ScheduledCall {
  /** The instance the method was called on: runs of one job on one instance never overlap. */
  readonly instance: object;
  readonly job: string;
  readonly concurrency: number | undefined;
  /** The original method, bound to its instance and arguments. */
  readonly fn: () => unknown;
}

/**
 * Runs a `@ForEachTenant()` method once for every active tenant, `concurrency` at a time, each in
 * its tenant's context (through `TenantService.forEach`), and reports what happened: one error
 * line per failed tenant with its id, one summary line per run, and the
 * `pg_tenancy_scheduled_runs_total{job,outcome}` counter when `metrics` is on. Before each
 * tenant's turn, `TenantAdmission.check` is asked again, so a tenant suspended or dropped while
 * the fan-out goes on is skipped from the moment the registry knows (within `maxStalenessMs`).
 * A run that starts while the previous run of the same job on the same instance is still going
 * is skipped with a warning. Once a graceful shutdown begins, the tenants under way finish and
 * no more start (they are listed in `stopped`). Provided by `TenantScheduleModule`; the decorator reaches it.
 */
@Injectable()
export class TenantScheduleRunner implements OnModuleInit {
  readonly #logger = new Logger('TenantSchedule');
  readonly #running = new WeakMap<object, Set<string>>();
  #metrics: TenantRunMetrics = { record: () => undefined };

  constructor(
    private readonly tenants: TenantService,
    private readonly admission: TenantAdmission,
    @Inject(DATABASE_MODULE_OPTIONS) private readonly options: DatabaseModuleOptions,
    @Optional() private readonly drain?: DrainController,
  ) {}

  /** Creates the run counters in the exporters of the `metrics` option. */
  async onModuleInit(): Promise<void> {
    this.#metrics = await createRunMetrics(this.options.metrics);
  }

  /** @internal Called by the decorated method. */
  async run(call: ScheduledCall): Promise<TenantScheduleSummary> {
    const { instance, job } = call;
    let running = this.#running.get(instance);
    if (!running) this.#running.set(instance, (running = new Set()));
    if (running.has(job)) {
      this.#metrics.record(job, 'overlapped');
      this.#logger.warn(
        `Scheduled job ${job} is still running from its previous start; this run is skipped. ` +
          'Give the schedule a longer period, or more concurrency, if this repeats.',
        { job },
      );
      return {
        job,
        overlapped: true,
        ok: [],
        failed: [],
        skipped: [],
        stopped: [],
        durationMs: 0,
      };
    }
    running.add(job);
    const started = performance.now();
    const ok: string[] = [];
    const failed: TenantScheduleFailure[] = [];
    const skipped: string[] = [];
    const stopped: string[] = [];
    try {
      await this.tenants.forEach(
        async (_db, tenant) => {
          const tenantId = tenant.id;
          // Shutdown waits for the run: let the tenants under way finish, start no more.
          if (this.drain?.draining) {
            stopped.push(tenantId);
            this.#metrics.record(job, 'stopped');
            return;
          }
          if (await this.admission.check(tenantId)) {
            skipped.push(tenantId);
            this.#metrics.record(job, 'skipped');
            return;
          }
          try {
            await call.fn();
            ok.push(tenantId);
            this.#metrics.record(job, 'ok');
          } catch (error) {
            failed.push({ tenantId, error });
            this.#metrics.record(job, 'failed');
            this.#logger.error(
              `Scheduled job ${job} failed for tenant ${tenantId}: ${messageOf(error)}`,
              error instanceof Error ? error.stack : undefined,
              { job, tenantId },
            );
          }
        },
        call.concurrency === undefined ? {} : { concurrency: call.concurrency },
      );
    } finally {
      running.delete(job);
    }
    const durationMs = Math.round(performance.now() - started);
    const summary = { job, overlapped: false, ok, failed, skipped, stopped, durationMs };
    const line =
      `Scheduled job ${job}: ${ok.length} tenant(s) ok, ${failed.length} failed, ` +
      `${skipped.length} skipped (suspended or dropped meanwhile)` +
      (stopped.length > 0 ? `, ${stopped.length} not started (shutting down)` : '') +
      ` in ${durationMs} ms`;
    const fields = {
      job,
      ok: ok.length,
      failed: failed.length,
      skipped: skipped.length,
      stopped: stopped.length,
    };
    if (failed.length > 0) this.#logger.warn(line, fields);
    else this.#logger.log(line, fields);
    return summary;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
