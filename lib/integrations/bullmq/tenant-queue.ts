import type { BulkJobOptions, Job, JobSchedulerTemplateOptions, JobsOptions, Queue } from 'bullmq';
import type { RepeatOptions } from 'bullmq';
import type { TenantAdmission } from '../../module/tenant-admission.js';
import { TenantRequiredError } from '../../tenancy/tenant.errors.js';
import { stampTenant } from './tenant-job.js';

/**
 * A BullMQ queue whose jobs carry their tenant: `add()` and `addBulk()` store the current
 * tenant (the request's, or the job's the code runs in) in each job's data under
 * `TENANT_JOB_KEY`, where a `TenantWorkerHost` reads it and runs the job in that tenant.
 *
 * Outside any tenant context, adding a job is a `TenantRequiredError` (never a default tenant),
 * unless the caller names the tenant with {@link forTenant}. A queue whose jobs have no tenant
 * is a plain `Queue` (`@InjectQueue()`), served by a `@NoTenant()` processor.
 *
 * Get one with `@InjectTenantQueue(name)` from `TenantQueueModule.registerQueue()`.
 *
 * @example
 * constructor(@InjectTenantQueue('mail') private readonly mail: TenantQueue<{ to: string }>) {}
 * send(to: string) {
 *   return this.mail.add('welcome', { to }); // in a request for acme: the job is acme's
 * }
 */
export class TenantQueue<
  DataType extends object = Record<string, unknown>,
  ResultType = unknown,
  NameType extends string = string,
> {
  /**
   * @param queue the BullMQ queue the jobs go to; everything but adding jobs (counts, pausing,
   *   reading jobs) is done on it directly.
   * @param admission where the current tenant is read.
   * @param tenantId the tenant every job is added for, instead of the current one.
   */
  constructor(
    readonly queue: Queue<DataType, ResultType, NameType, DataType, ResultType, NameType>,
    private readonly admission: TenantAdmission,
    private readonly tenantId?: string,
  ) {}

  /** The queue's name. */
  get name(): string {
    return this.queue.name;
  }

  /**
   * The same queue, adding every job for tenant `id`, whatever the current tenant: for code that
   * runs outside a tenant context (a CLI command, a fan-out over tenants) or that deliberately
   * works for another tenant. The worker checks `id` as it checks any job's tenant.
   */
  forTenant(id: string): TenantQueue<DataType, ResultType, NameType> {
    return new TenantQueue(this.queue, this.admission, id);
  }

  /**
   * `Queue.add`, with the tenant stored in the job's data.
   * @throws TenantRequiredError outside a tenant context (unless {@link forTenant} named one),
   *   TenantJobDataError for data that is not an object, TenantJobConflictError for data that
   *   names another tenant.
   */
  async add(
    name: NameType,
    data: DataType,
    opts?: JobsOptions,
  ): Promise<Job<DataType, ResultType, NameType>> {
    const tenantId = this.#tenant(name);
    return this.queue.add(name, stampTenant(data, tenantId, this.queue.name, name), opts);
  }

  /**
   * `Queue.addBulk`, with the tenant stored in each job's data; nothing is added when one job
   * cannot carry it.
   * @throws as {@link add}
   */
  async addBulk(
    jobs: ReadonlyArray<{ name: NameType; data: DataType; opts?: BulkJobOptions }>,
  ): Promise<Array<Job<DataType, ResultType, NameType>>> {
    const stamped = jobs.map((job) => ({
      ...job,
      data: stampTenant(job.data, this.#tenant(job.name), this.queue.name, job.name),
    }));
    return this.queue.addBulk(stamped);
  }

  /**
   * `Queue.upsertJobScheduler`, with the tenant stored in the template's data: every job the
   * scheduler creates runs for the tenant it was upserted for. Scheduler ids are the queue's,
   * not the tenant's: include the tenant in the id when each tenant has its own.
   * @throws as {@link add}
   */
  async upsertJobScheduler(
    jobSchedulerId: NameType,
    repeatOpts: Omit<RepeatOptions, 'key'>,
    jobTemplate: { name?: NameType; data?: DataType; opts?: JobSchedulerTemplateOptions } = {},
  ): Promise<Job<DataType, ResultType, NameType>> {
    const name = jobTemplate.name ?? jobSchedulerId;
    const data = stampTenant(jobTemplate.data, this.#tenant(name), this.queue.name, name);
    return this.queue.upsertJobScheduler(jobSchedulerId, repeatOpts, { ...jobTemplate, data });
  }

  #tenant(jobName: string): string {
    const id = this.tenantId ?? this.admission.currentTenantId();
    if (id === undefined)
      throw new TenantRequiredError(
        `job "${jobName}" added to queue "${this.queue.name}" outside any tenant context; add it ` +
          `inside one, or name its tenant with queue.forTenant(id)`,
      );
    return id;
  }
}
