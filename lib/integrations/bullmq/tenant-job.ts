import { TenantJobConflictError, TenantJobDataError } from './bullmq.errors.js';

/**
 * The key of a job's data under which a `TenantQueue` stores the job's tenant id, and where
 * `TenantWorkerHost` reads it: `{ invoiceId: 7, __tenant: 'acme' }`.
 *
 * The data is the one part of a job that BullMQ keeps as it is everywhere a job goes: in Redis,
 * through retries, delays and job schedulers, in a sandboxed processor, in `Queue.getJob()` and
 * in dashboards. Reserved: do not write it yourself, and keep it when you call `job.updateData()`
 * (a job whose data lost it fails closed on its next attempt).
 */
export const TENANT_JOB_KEY = '__tenant';

/**
 * The tenant id a job carries (see {@link TENANT_JOB_KEY}), or `undefined` when it carries none
 * or something that is not a string.
 *
 * @example tenantOfJob(job) // 'acme'
 */
export function tenantOfJob(job: { readonly data: unknown }): string | undefined {
  const id = rawTenantOf(job.data);
  return typeof id === 'string' ? id : undefined;
}

/** What a job's data holds under the tenant key, unchecked (the worker's admission checks it). */
export function rawTenantOf(data: unknown): unknown {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return undefined;
  return Object.hasOwn(data, TENANT_JOB_KEY)
    ? (data as Record<string, unknown>)[TENANT_JOB_KEY]
    : undefined;
}

/**
 * A copy of `data` that carries `tenantId`.
 * @throws TenantJobDataError when `data` is not an object, TenantJobConflictError when it names
 *   another tenant already.
 */
export function stampTenant<T>(data: T, tenantId: string, queueName: string, jobName: string): T {
  if (data === undefined) return { [TENANT_JOB_KEY]: tenantId } as T;
  if (typeof data !== 'object' || data === null || Array.isArray(data))
    throw new TenantJobDataError(queueName, jobName);
  if (Object.hasOwn(data, TENANT_JOB_KEY) && rawTenantOf(data) !== tenantId)
    throw new TenantJobConflictError(queueName, jobName, tenantId);
  return { ...data, [TENANT_JOB_KEY]: tenantId };
}
