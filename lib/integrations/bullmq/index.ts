export {
  TenantJobConflictError,
  TenantJobDataError,
  TenantWorkerHostError,
} from './bullmq.errors.js';
export { TENANT_JOB_KEY, tenantOfJob } from './tenant-job.js';
export { TenantQueue } from './tenant-queue.js';
export {
  getTenantQueueToken,
  InjectTenantQueue,
  TenantQueueModule,
} from './tenant-queue.module.js';
export { BULLMQ_CONTEXT_TYPE, TenantWorkerHost } from './tenant-worker-host.js';
