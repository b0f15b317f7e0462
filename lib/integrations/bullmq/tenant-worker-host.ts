import { HttpException, Inject } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host.js';
import { WorkerHost } from '@nestjs/bullmq';
import { UnrecoverableError, WaitingError, type Job, type Worker } from 'bullmq';
import { NO_TENANT_KEY } from '../../module/no-tenant.decorator.js';
import { TenantAdmission } from '../../module/tenant-admission.js';
import { DatabaseShuttingDownError } from '../../shared/errors.js';
import { TenantError, TenantNotFoundError } from '../../tenancy/tenant.errors.js';
import { TenantWorkerHostError } from './bullmq.errors.js';
import { rawTenantOf } from './tenant-job.js';

/** The context type `tenancy.authorize` sees for a job (`ctx.getType()`). */
export const BULLMQ_CONTEXT_TYPE = 'bullmq';

/**
 * The base class of a `@Processor()` whose jobs run in their tenant: extend it instead of
 * `WorkerHost`, and write the job's work in `handle()` instead of `process()`. For each job it
 * reads the tenant the job carries (`TENANT_JOB_KEY`, stored by a `TenantQueue`), gives it the
 * checks a request gets through `TenantAdmission.admit` (id pattern, `tenancy.authorize` with a
 * context of type `'bullmq'` whose arguments are `[job, token]`, unknown, suspended), then runs
 * `handle()` in that tenant's context, so `@InjectTenantDb()` reaches it.
 *
 * A job that cannot be served fails at once and is not retried, whatever its `attempts`: it
 * fails with BullMQ's `UnrecoverableError`, whose message starts with the typed error's name
 * (`TenantSuspendedError: ...`, `TenantRequiredError: ...`) and whose `cause` is that error.
 * A job with no tenant fails so, unless the class is marked `@NoTenant()`: then every job runs
 * without a tenant context.
 *
 * At a graceful shutdown, a job taken after the database stopped admitting new work goes back to
 * the waiting jobs without using an attempt, and the worker takes no more; jobs already running
 * finish.
 *
 * @example
 * ```ts
 * @Processor('mail')
 * export class MailProcessor extends TenantWorkerHost {
 *   constructor(@InjectTenantDb() private readonly db: SchemaDb) {
 *     super();
 *   }
 *   async handle(job: Job<{ to: string }>) {
 *     await this.db.execute('INSERT INTO {{tables.outbox}} (recipient) VALUES ($1)', [job.data.to]);
 *   }
 * }
 * ```
 */
export abstract class TenantWorkerHost<T extends Worker = Worker> extends WorkerHost<T> {
  // Injected by property, under a name a processor's own fields are unlikely to take.
  @Inject(TenantAdmission) private readonly tenancyAdmission!: TenantAdmission;
  #tenantFree: boolean | undefined;

  constructor() {
    super();
    // A process() of the subclass's own would bypass every check: refuse it when Nest builds it.
    if (this.process !== TenantWorkerHost.prototype.process)
      throw new TenantWorkerHostError(this.constructor.name);
  }

  /**
   * The job's work, run in the job's tenant (or without one in a `@NoTenant()` class). What it
   * returns is the job's result; what it throws fails the attempt as in any processor.
   */
  abstract handle(job: Job, token?: string): Promise<unknown>;

  /** Called by the worker for each job: the checks, then {@link handle} in the tenant. */
  async process(job: Job, token?: string): Promise<unknown> {
    this.#tenantFree ??= Boolean(new Reflector().get(NO_TENANT_KEY, this.constructor));
    if (this.#tenantFree) return this.#runWithoutTenant(job, token);

    // The handler is what Reflector reads metadata from, as for a route; it is never called.
    // eslint-disable-next-line @typescript-eslint/unbound-method
    const context = new ExecutionContextHost([job, token], this.constructor as never, this.handle);
    context.setType(BULLMQ_CONTEXT_TYPE);
    const source = `job "${job.name}" (id ${job.id}) of queue "${job.queueName}"`;
    let started = false;
    try {
      const scope = await this.tenancyAdmission.admit(rawTenantOf(job.data), { source, context });
      return await this.tenancyAdmission.run(scope, () => {
        started = true;
        return this.handle(job, token);
      });
    } catch (err) {
      if (!started) throw await this.#refused(err, job, token);
      // The tenant was dropped while the job ran: another attempt would be refused too.
      if (err instanceof TenantNotFoundError && err.tenantId === rawTenantOf(job.data))
        throw unrecoverable(err);
      throw err;
    }
  }

  async #runWithoutTenant(job: Job, token: string | undefined): Promise<unknown> {
    let started = false;
    try {
      return await this.tenancyAdmission.runWithoutTenant(() => {
        started = true;
        return this.handle(job, token);
      });
    } catch (err) {
      if (!started) throw await this.#refused(err, job, token);
      throw err;
    }
  }

  /** What a job that never reached `handle()` fails with. */
  async #refused(err: unknown, job: Job, token: string | undefined): Promise<unknown> {
    if (err instanceof DatabaseShuttingDownError) {
      // The process is going away: leave the job to another worker, with its attempts intact.
      await this.worker.pause(true);
      await job.moveToWait(token);
      return new WaitingError();
    }
    // Refusals say the same on every attempt; anything else (the database unreachable during
    // the tenant's lookup) may pass, and is retried as the job's options say.
    if (err instanceof TenantError || err instanceof HttpException) return unrecoverable(err);
    return err;
  }
}

/** BullMQ's error for a job not to retry, carrying the typed error. */
function unrecoverable(err: Error): UnrecoverableError {
  const failure = new UnrecoverableError(`${err.name}: ${err.message}`);
  failure.cause = err;
  return failure;
}
