// Queues (#26): a job added in a tenant's context carries the tenant through a real Redis, and a
// TenantWorkerHost runs it in that tenant after the checks a request gets, failing closed (and
// not retried) for a job whose tenant is missing, refused, unknown or suspended.
import { once } from 'node:events';
import { Test, type TestingModule } from '@nestjs/testing';
import { BullModule, InjectQueue, Processor } from '@nestjs/bullmq';
import type { Job, Queue, Worker } from 'bullmq';
import {
  DatabaseModule,
  InjectTenantDb,
  NoTenant,
  SchemaDb,
  TenantAdmission,
  TenantContextMissingError,
  TenantRequiredError,
  TenantService,
} from '../../../../lib/index.js';
import { DrainController } from '../../../../lib/connection/drain-controller.js';
import {
  BULLMQ_CONTEXT_TYPE,
  InjectTenantQueue,
  TENANT_JOB_KEY,
  TenantJobConflictError,
  TenantJobDataError,
  TenantQueue,
  TenantQueueModule,
  TenantWorkerHost,
  TenantWorkerHostError,
  tenantOfJob,
} from '../../../../lib/integrations/bullmq/index.js';
import { adminPool, useTestDatabase } from '../../../support/database.js';
import {
  describeWithServer,
  startRedis,
  type ExternalServer,
} from '../../../support/external-servers.js';
import { useMigrationFolders } from '../../../support/migrations.js';

/** What the processors saw, per job id. */
const ran = new Map<string, { tenant: string | undefined; n: unknown }>();
/** Jobs that wait for the test before finishing (by `data.gate`). */
const gates = new Map<string, { entered: () => void; release: Promise<void>; open: () => void }>();

@Processor({ name: 'work' }, { concurrency: 4 })
class WorkProcessor extends TenantWorkerHost {
  constructor(
    @InjectTenantDb() private readonly db: SchemaDb,
    private readonly admission: TenantAdmission,
  ) {
    super();
  }

  async handle(job: Job<{ n?: number; fail?: boolean; gate?: string }>) {
    ran.set(job.id!, { tenant: this.admission.currentTenantId(), n: job.data.n });
    const gate = job.data.gate && gates.get(job.data.gate);
    if (gate) {
      gate.entered();
      await gate.release;
    }
    if (job.data.fail) throw new Error('the work itself failed');
    await this.db.execute('INSERT INTO {{tables.t}} (n, job) VALUES ($1, $2)', [
      job.data.n,
      job.id,
    ]);
    return this.admission.currentTenantId();
  }
}

@NoTenant()
@Processor('system')
class SystemProcessor extends TenantWorkerHost {
  constructor(
    @InjectTenantDb() private readonly db: SchemaDb,
    private readonly admission: TenantAdmission,
  ) {
    super();
  }

  async handle(job: Job) {
    ran.set(job.id!, { tenant: this.admission.currentTenantId(), n: undefined });
    try {
      await this.db.fetchValue('SELECT 1');
      return 'reached a tenant';
    } catch (err) {
      return err instanceof TenantContextMissingError ? 'no tenant' : String(err);
    }
  }
}

class Producer {
  constructor(
    @InjectTenantQueue('work')
    readonly work: TenantQueue<{ n?: number; fail?: boolean; gate?: string }>,
    @InjectQueue('work') readonly plain: Queue,
    @InjectQueue('system') readonly system: Queue,
    @InjectTenantQueue('later') readonly later: TenantQueue,
  ) {}
}

describeWithServer('redis', 'BullMQ queues carry the tenant', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let redis: ExternalServer;
  let app: TestingModule;
  let tenants: TenantService;
  let producer: Producer;
  let worker: Worker;
  const asked: Array<{ id: string; type: string; job: unknown }> = [];

  beforeAll(async () => {
    redis = await startRedis();
    app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          tenancy: {
            migrations: await folder({
              '001_t.sql': 'CREATE TABLE {{tables.t}} (n int, job text);',
            }),
            registrySchema: 'bullmq_reg',
            interceptor: false,
            authorize: (id, ctx) => {
              asked.push({ id, type: ctx.getType(), job: ctx.getArgs()[0] });
              return id !== 'denied';
            },
          },
        }),
        BullModule.forRoot({ connection: { host: redis.host, port: redis.port } }),
        TenantQueueModule.registerQueue({ name: 'work' }, { name: 'system' }),
        TenantQueueModule.registerQueueAsync({ name: 'later', useFactory: () => ({}) }),
      ],
      providers: [WorkProcessor, SystemProcessor, Producer],
    }).compile();
    await app.init();
    tenants = app.get(TenantService);
    producer = app.get(Producer);
    worker = app.get(WorkProcessor).worker;
    for (const id of ['q1', 'q2', 'q3', 'q4']) await tenants.create(id);
    await tenants.suspend('q3');
  }, 30_000);

  afterAll(async () => {
    // A job still held at a gate (a failed test) would hold the worker's close.
    for (const gate of gates.values()) gate.open();
    try {
      await app?.close();
    } finally {
      await redis?.stop();
    }
  });

  /** Resolves with the job once the worker has finished with it for good (completed or failed). */
  function settled(id: string, queue: Queue = producer.plain, by: Worker = worker): Promise<Job> {
    return new Promise((resolve) => {
      const check = async () => {
        const job = await queue.getJob(id);
        const state = await job?.getState();
        if (state === 'completed' || state === 'failed') {
          by.off('completed', onEvent);
          by.off('failed', onEvent);
          resolve((await queue.getJob(id))!);
        }
      };
      const onEvent = (job?: Job) => {
        if (job?.id === id) void check();
      };
      by.on('completed', onEvent);
      by.on('failed', onEvent);
      void check();
    });
  }

  /** A gate a job with `data.gate = name` waits at. */
  function openGate(name: string) {
    let entered!: () => void;
    let release!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    const released = new Promise<void>((resolve) => (release = resolve));
    gates.set(name, { entered, release: released, open: () => release() });
    return { inside, release };
  }

  const rowsOf = async (id: string) =>
    (await tenants.db(id)).fetchAll<{ n: number }>('SELECT n FROM {{tables.t}} ORDER BY n');

  it('runs each job in the tenant it was added in, two tenants interleaved', async () => {
    const added: Job[] = [];
    for (let n = 1; n <= 8; n++) {
      const id = n % 2 ? 'q1' : 'q2';
      added.push(await tenants.run(id, () => producer.work.add('write', { n })));
    }
    added.push(
      ...(await tenants.run('q2', () =>
        producer.work.addBulk([
          { name: 'write', data: { n: 10 } },
          { name: 'write', data: { n: 12 } },
        ]),
      )),
    );
    const done = await Promise.all(added.map((job) => settled(job.id!)));
    expect(done.map((job) => [job.returnvalue, tenantOfJob(job)])).toEqual(
      added.map((job) => [tenantOfJob(job), tenantOfJob(job)]),
    );
    expect(done[0].data).toEqual({ n: 1, [TENANT_JOB_KEY]: 'q1' });
    expect((await rowsOf('q1')).map((r) => r.n)).toEqual([1, 3, 5, 7]);
    expect((await rowsOf('q2')).map((r) => r.n)).toEqual([2, 4, 6, 8, 10, 12]);
    expect(ran.get(added[1].id!)).toEqual({ tenant: 'q2', n: 2 });
    const hook = asked.find((a) => (a.job as Job).id === added[0].id);
    expect(hook).toMatchObject({ id: 'q1', type: BULLMQ_CONTEXT_TYPE });
  });

  it('adds a job for a named tenant outside a context, and refuses one that names none', async () => {
    const job = await producer.work.forTenant('q1').add('write', { n: 100 });
    expect((await settled(job.id!)).returnvalue).toBe('q1');
    // Named explicitly, it wins over the context's tenant.
    const other = await tenants.run('q2', () =>
      producer.work.forTenant('q1').add('write', { n: 101 }),
    );
    expect((await settled(other.id!)).returnvalue).toBe('q1');

    // A queue registered with registerQueueAsync (no processor: the job waits in Redis).
    const waiting = await tenants.run('q2', () => producer.later.add('report', { n: 1 }));
    expect(tenantOfJob((await producer.later.queue.getJob(waiting.id!))!)).toBe('q2');

    const before = await producer.plain.getJobCountByTypes('waiting', 'active', 'delayed');
    await expect(producer.work.add('write', { n: 1 })).rejects.toThrow(TenantRequiredError);
    await expect(producer.work.add('write', { n: 1 })).rejects.toThrow(/queue "work"/);
    await expect(producer.work.addBulk([{ name: 'write', data: { n: 1 } }])).rejects.toThrow(
      TenantRequiredError,
    );
    const q1 = producer.work.forTenant('q1');
    await expect(q1.add('write', 'text' as never)).rejects.toThrow(TenantJobDataError);
    await expect(q1.add('write', [1] as never)).rejects.toThrow(TenantJobDataError);
    await expect(q1.add('write', { n: 1, [TENANT_JOB_KEY]: 'q2' } as never)).rejects.toThrow(
      TenantJobConflictError,
    );
    await expect(
      q1.addBulk([
        { name: 'write', data: { n: 1 } },
        { name: 'write', data: 7 as never },
      ]),
    ).rejects.toThrow(TenantJobDataError);
    expect(await producer.plain.getJobCountByTypes('waiting', 'active', 'delayed')).toBe(before);
  });

  /** Adds a job straight to the queue (bypassing TenantQueue) and waits for its end. */
  async function failedOnce(data: object, tenantId: string | undefined) {
    const job = await producer.plain.add('write', data, { attempts: 3 });
    const done = await settled(job.id!);
    expect([tenantId, await done.getState(), done.attemptsMade, done.attemptsStarted]).toEqual([
      tenantId,
      'failed',
      1,
      1,
    ]);
    expect(ran.has(job.id!)).toBe(false);
    return done.failedReason;
  }

  it('fails a job of a suspended or unknown tenant at once, not retried, with the typed error', async () => {
    expect(await failedOnce({ n: 1, [TENANT_JOB_KEY]: 'q3' }, 'q3')).toMatch(
      /^TenantSuspendedError: .*"q3"/,
    );
    expect(await failedOnce({ n: 1, [TENANT_JOB_KEY]: 'ghost' }, 'ghost')).toMatch(
      /^TenantNotFoundError: .*"ghost"/,
    );
    expect(await failedOnce({ n: 1, [TENANT_JOB_KEY]: '../x' }, '../x')).toMatch(
      /^InvalidTenantIdError: /,
    );
  });

  it('fails closed, not retried, for a job with no tenant', async () => {
    expect(await failedOnce({ n: 1 }, undefined)).toMatch(
      /^TenantRequiredError: .*job "write" \(id \d+\) of queue "work"/,
    );
  });

  it('fails a job the authorize hook refuses, not retried, before the tenant is looked up', async () => {
    asked.length = 0;
    expect(await failedOnce({ n: 1, [TENANT_JOB_KEY]: 'denied' }, 'denied')).toMatch(
      /^TenantAccessDeniedError: /,
    );
    expect(asked).toHaveLength(1);
    expect(asked[0]).toMatchObject({ id: 'denied', type: 'bullmq' });
    expect((asked[0].job as Job).data).toEqual({ n: 1, [TENANT_JOB_KEY]: 'denied' });
  });

  it('retries a job whose own work fails, as its attempts say', async () => {
    const job = await tenants.run('q1', () =>
      producer.work.add('write', { n: 5, fail: true }, { attempts: 2 }),
    );
    const done = await settled(job.id!);
    expect([await done.getState(), done.attemptsMade, done.failedReason]).toEqual([
      'failed',
      2,
      'the work itself failed',
    ]);
  });

  it('fails a job whose tenant is dropped while it runs, not retried', async () => {
    const gate = openGate('dropped');
    const job = await producer.work
      .forTenant('q4')
      .add('write', { n: 1, gate: 'dropped' }, { attempts: 3 });
    await Promise.race([gate.inside, settled(job.id!)]); // settled first: a bug
    await tenants.drop('q4');
    gate.release();
    const done = await settled(job.id!);
    expect([await done.getState(), done.attemptsMade]).toEqual(['failed', 1]);
    expect(done.failedReason).toMatch(/^TenantNotFoundError: .*"q4"/);
  });

  it('gives the jobs of a scheduler upserted in a tenant context that tenant', async () => {
    const first = await tenants.run('q2', () =>
      producer.work.upsertJobScheduler(
        'nightly-q2',
        { every: 60_000 },
        { name: 'write', data: { n: 900 } },
      ),
    );
    try {
      expect(tenantOfJob(first)).toBe('q2');
      await producer.plain.promoteJobs();
      expect((await settled(first.id!)).returnvalue).toBe('q2');
      expect((await rowsOf('q2')).map((r) => r.n)).toContain(900);
    } finally {
      await producer.plain.removeJobScheduler('nightly-q2');
    }
  });

  it('runs the jobs of a @NoTenant() processor without a tenant', async () => {
    const plainJob = await producer.system.add('tick', {});
    const stamped = await producer.system.add('tick', { [TENANT_JOB_KEY]: 'q1' });
    const systemWorker = app.get(SystemProcessor).worker;
    const done = await Promise.all(
      [plainJob, stamped].map((job) => settled(job.id!, producer.system, systemWorker)),
    );
    expect(done.map((job) => [job.failedReason, job.returnvalue])).toEqual([
      [undefined, 'no tenant'],
      [undefined, 'no tenant'],
    ]);
    expect(ran.get(plainJob.id!)?.tenant).toBeUndefined();
    expect(ran.get(stamped.id!)?.tenant).toBeUndefined();
  });

  it('refuses a processor that overrides process()', () => {
    class Bypass extends TenantWorkerHost {
      override async process() {
        return 'no checks';
      }
      async handle() {
        return 'unused';
      }
    }
    expect(() => new Bypass()).toThrow(TenantWorkerHostError);
  });

  // Last: it starts the database's shutdown drain, which cannot be undone.
  it('at shutdown lets a running job finish, and puts a job taken later back, attempts intact', async () => {
    const schemaOfQ1 = (await tenants.db('q1')).schema!;
    const { inside, release } = openGate('g');
    const running = await producer.work.forTenant('q1').add('write', { n: 500, gate: 'g' });
    await Promise.race([inside, settled(running.id!)]); // settled first: a bug

    const drained = app.get(DrainController).drain(10_000);
    const paused = once(worker, 'paused');
    const late = await producer.work.forTenant('q2').add('write', { n: 501 }, { attempts: 1 });
    // Either the worker put the late job back and paused, or (a bug) it settled the job.
    await Promise.race([paused, settled(late.id!)]);
    release();
    await drained;

    const done = await settled(running.id!);
    expect([await done.getState(), done.returnvalue]).toEqual(['completed', 'q1']);
    const pool = adminPool(database.current.url);
    try {
      const { rows } = await pool.query(`SELECT n FROM "${schemaOfQ1}".t WHERE job = $1`, [
        running.id,
      ]);
      expect(rows).toEqual([{ n: 500 }]);
    } finally {
      await pool.end();
    }
    const waiting = (await producer.plain.getJob(late.id!))!;
    expect([await waiting.getState(), waiting.attemptsMade]).toEqual(['waiting', 0]);
    expect(ran.has(late.id!)).toBe(false);
  });
});
