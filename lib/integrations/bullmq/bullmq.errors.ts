import { PgTenancyError } from '../../shared/errors.js';

/**
 * A job for a tenant queue carries data that cannot hold its tenant: the tenant is stored in the
 * job's data under `TENANT_JOB_KEY`, so the data must be an object (or left out). Wrap a string,
 * number or array in an object, such as `{ value }`.
 */
export class TenantJobDataError extends PgTenancyError {
  constructor(
    /** The queue the job was added to. */
    readonly queueName: string,
    /** The job's name. */
    readonly jobName: string,
  ) {
    super(
      `Job "${jobName}" of queue "${queueName}" has data that is not an object: a tenant queue ` +
        `keeps the job's tenant in its data, so pass an object (wrap the value: { value }).`,
    );
  }
}

/**
 * A job for a tenant queue already names a tenant in its data (under `TENANT_JOB_KEY`), and not
 * the one it is being added for. The key is the queue's: to add a job for another tenant, use
 * `queue.forTenant(id)` and leave the key out of the data.
 */
export class TenantJobConflictError extends PgTenancyError {
  constructor(
    /** The queue the job was added to. */
    readonly queueName: string,
    /** The job's name. */
    readonly jobName: string,
    /** The tenant the job is being added for. */
    readonly tenantId: string,
  ) {
    super(
      `Job "${jobName}" of queue "${queueName}" names another tenant in its data than "${tenantId}", ` +
        `the one it is added for: leave the reserved key out of the data, and name a tenant with ` +
        `queue.forTenant(id).`,
    );
  }
}

/**
 * A class extending `TenantWorkerHost` defines `process()`, which would run its jobs without
 * their tenant's checks and context. Thrown when Nest creates the processor.
 */
export class TenantWorkerHostError extends PgTenancyError {
  constructor(className: string) {
    super(
      `${className} extends TenantWorkerHost and overrides process(): rename it to handle(job, ` +
        `token), which TenantWorkerHost calls in the job's tenant after its checks.`,
    );
  }
}
