// The queues integration's channel (nestjs-pg-tenancy/bullmq): each operation is a job on a real
// Redis, added through a `TenantQueue` (for its tenant with `forTenant`, or from inside the
// tenant's work), and run by a `TenantWorkerHost` processor in the serving app. Work without a
// tenant is either refused by the producer (`TenantRequiredError`) or, added straight to the
// BullMQ queue with no tenant in its data, must fail in the worker. The channel follows each job
// by its id through the worker's `completed` and `failed` events; a refusal is BullMQ's
// `UnrecoverableError` whose `cause` is the typed error.
import { Inject } from '@nestjs/common';
import { BullModule, Processor } from '@nestjs/bullmq';
import { FuzzWork } from '../app.mjs';

const QUEUE = 'leak-fuzzer';
// A job neither completed nor failed by then is a fault of its own (reported, not waited for).
const JOB_TIMEOUT_MS = 20_000;

/** The typed error behind a failed job: its `cause`, else the name its message starts with. */
function refusalOfJob(err) {
  if (err?.cause instanceof Error) return err.cause;
  const name = /^(\w+Error): /.exec(String(err?.message))?.[1];
  return name ? { name, message: err.message } : err;
}

export default async function bullmqChannel({ lib, entry, servers }) {
  if (!servers?.redis)
    return { name: 'bullmq', skipped: 'no Redis server (redis-server is not installed)' };
  const { TenantQueueModule, TenantWorkerHost, getTenantQueueToken } = await entry();

  class FuzzProcessor extends TenantWorkerHost {
    constructor(work) {
      super();
      this.work = work;
    }

    async handle(job) {
      await this.work.perform(job.data.op, job.data.intended, 'bullmq', job.data.pause);
    }
  }
  Processor(QUEUE, { concurrency: 16 })(FuzzProcessor);
  Inject(FuzzWork)(FuzzProcessor, undefined, 0);

  const waiting = new Map();
  let queue, tenants;
  const settle = (job, outcome) => {
    const waiter = waiting.get(job?.id);
    if (!waiter) return;
    waiting.delete(job.id);
    waiter(outcome);
  };
  const finished = (op) =>
    new Promise((resolve) => {
      const id = `fuzz-${op.id}`;
      const timer = setTimeout(() => {
        waiting.delete(id);
        resolve({
          ok: false,
          error: { name: 'JobTimeout', message: `no outcome in ${JOB_TIMEOUT_MS} ms` },
        });
      }, JOB_TIMEOUT_MS);
      waiting.set(id, (outcome) => {
        clearTimeout(timer);
        resolve(outcome);
      });
    });

  return {
    name: 'bullmq',
    weight: 2,
    module: {
      imports: [
        BullModule.forRoot({
          connection: { host: servers.redis.host, port: servers.redis.port },
          prefix: `fuzz${Date.now()}`,
        }),
        TenantQueueModule.registerQueue({ name: QUEUE }),
      ],
      providers: [FuzzProcessor],
    },
    async start(ctx) {
      queue = ctx.app.get(getTenantQueueToken(QUEUE));
      tenants = ctx.app.get(lib.TenantService);
      const worker = ctx.app.get(FuzzProcessor).worker;
      worker.on('completed', (job) => settle(job, { ok: true }));
      worker.on('failed', (job, err) => settle(job, { ok: false, error: refusalOfJob(err) }));
    },
    async send(op) {
      const data = { op: op.id, intended: op.intended, pause: op.pause };
      const opts = { jobId: `fuzz-${op.id}`, removeOnComplete: true, removeOnFail: true };
      const done = finished(op);
      try {
        if (op.kind === 'missing' && op.id % 2 === 0) await queue.queue.add('fuzz', data, opts);
        else if (op.kind === 'missing') await queue.add('fuzz', data, opts);
        else if (op.kind === 'tenant' && op.id % 4 === 0)
          await tenants.run(op.tenant, () => queue.add('fuzz', data, opts)); // from the context
        else await queue.forTenant(op.tenant).add('fuzz', data, opts);
      } catch (err) {
        settle({ id: opts.jobId }, { ok: true }); // stops the timer; the outcome is the throw
        throw err; // refused by the producer: nothing was added
      }
      const outcome = await done;
      if (!outcome.ok) throw outcome.error;
    },
  };
}
