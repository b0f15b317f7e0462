// @ForEachTenant(): a scheduled method runs once per active tenant, in that tenant's context,
// on a real PostgreSQL and the real @nestjs/schedule scheduler; failures are reported per tenant
// (log line with the tenant id, summary line, Prometheus counter); a tenant suspended or dropped
// during the fan-out is not run after; a run that overlaps the previous one is skipped.
import { Injectable } from '@nestjs/common';
import { Interval, ScheduleModule, SchedulerRegistry } from '@nestjs/schedule';
import { Test, type TestingModule } from '@nestjs/testing';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { Registry } from 'prom-client';
import {
  DatabaseModule,
  getTenantDbToken,
  InjectTenantDb,
  TenantContextMissingError,
  SchemaDb,
  TenantAdmission,
  TenantService,
} from '../../../../lib/index.js';
import {
  ForEachTenant,
  TenantScheduleModule,
  TenantScheduleNotWiredError,
  type TenantScheduleSummary,
} from '../../../../lib/integrations/schedule/index.js';
import { useTestDatabase } from '../../../support/database.js';
import { useMigrationFolders } from '../../../support/migrations.js';
import { RecordingLogger } from '../../../support/logs.js';

class TestReader extends MetricReader {
  protected override async onForceFlush() {}
  protected override async onShutdown() {}
}

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** What each job does for a tenant, set by each test. */
type Step = (tenantId: string) => Promise<void> | void;

@Injectable()
class Jobs {
  step: Step = () => undefined;
  readonly seen: string[] = [];
  constructor(
    @InjectTenantDb() private readonly db: SchemaDb,
    private readonly admission: TenantAdmission,
  ) {}

  @ForEachTenant({ concurrency: 2 })
  async record(): Promise<void> {
    const tenantId = this.admission.currentTenantId()!;
    this.seen.push(tenantId);
    await this.db.execute('INSERT INTO {{tables.runs}} (tenant) VALUES ($1)', [tenantId]);
    await this.step(tenantId);
  }

  @ForEachTenant({ concurrency: 1, name: 'one-at-a-time' })
  async serial(): Promise<void> {
    const tenantId = this.admission.currentTenantId()!;
    this.seen.push(tenantId);
    await this.step(tenantId);
  }
}

@Injectable()
class Ticker {
  readonly seen = new Set<string>();
  readonly done = deferred();
  /** Set by the test once the tenants are set up: earlier ticks saw them being made. */
  armed = false;
  constructor(private readonly admission: TenantAdmission) {}

  // Above @Interval on purpose: the scheduler must still find the interval's metadata.
  @ForEachTenant()
  @Interval('tenant-tick', 20)
  tick(): void {
    if (!this.armed) return;
    this.seen.add(this.admission.currentTenantId()!);
    if (this.seen.size >= 3) this.done.resolve();
  }
}

describe('@ForEachTenant()', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  const logger = new RecordingLogger();
  const metrics = new Registry();
  const reader = new TestReader();
  const meter = new MeterProvider({ readers: [reader] }).getMeter('test');
  let app: TestingModule;
  let tenants: TenantService;
  let jobs: Jobs;
  const call = (fn: () => Promise<void>) => fn() as unknown as Promise<TenantScheduleSummary>;

  beforeAll(async () => {
    app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          metrics: { prometheus: { registry: metrics }, openTelemetry: { meter } },
          tenancy: {
            migrations: await folder({
              '001_runs.sql': 'CREATE TABLE {{tables.runs}} (tenant text NOT NULL);',
            }),
            registrySchema: 'sched_reg',
            interceptor: false,
          },
        }),
        TenantScheduleModule,
        ScheduleModule.forRoot(),
      ],
      providers: [Jobs, Ticker],
    })
      .setLogger(logger)
      .compile();
    await app.init();
    tenants = app.get(TenantService);
    for (const id of ['s1', 's2', 's3']) await tenants.create(id);
    await tenants.create('s4');
    await tenants.suspend('s4');
    jobs = app.get(Jobs);
  });
  afterAll(() => app?.close());
  beforeEach(() => {
    jobs.step = () => undefined;
    jobs.seen.length = 0;
    logger.errors.length = 0;
    logger.warnings.length = 0;
    logger.logs.length = 0;
  });

  const rows = async (id: string) =>
    (await tenants.db(id)).fetchValue<number>('SELECT count(*)::int FROM {{tables.runs}}');

  it("starts beside ScheduleModule, whose explorer reads every provider's methods outside a tenant", () => {
    // The tenant-db proxy is such a provider: its methods read as functions, needing the
    // tenant only when called.
    const proxy = app.get<SchemaDb>(getTenantDbToken());
    expect(typeof proxy.withSchema).toBe('function');
    expect(() => proxy.table('runs')).toThrow(TenantContextMissingError);
  });

  it('runs under the real scheduler, once per active tenant, in its context', async () => {
    const ticker = app.get(Ticker);
    expect(app.get(SchedulerRegistry).getIntervals()).toContain('tenant-tick');
    ticker.armed = true;
    await ticker.done.promise;
    app.get(SchedulerRegistry).deleteInterval('tenant-tick');
    expect([...ticker.seen].sort()).toEqual(['s1', 's2', 's3']);
  });

  it('runs each active tenant once, suspended ones never, and writes land in the right schema', async () => {
    const before = await Promise.all(['s1', 's2', 's3'].map(rows));
    const summary = await call(() => jobs.record());
    expect([...summary.ok].sort()).toEqual(['s1', 's2', 's3']);
    expect(summary).toMatchObject({
      job: 'Jobs.record',
      overlapped: false,
      failed: [],
      skipped: [],
    });
    expect([...jobs.seen].sort()).toEqual(['s1', 's2', 's3']);
    expect(await Promise.all(['s1', 's2', 's3'].map(rows))).toEqual(
      before.map((n) => (n ?? 0) + 1),
    );
    expect(
      logger.logs.some((l) => /Scheduled job Jobs\.record: 3 tenant\(s\) ok, 0 failed/.test(l)),
    ).toBe(true);
  });

  it('reports a failing tenant by id, runs the others, and counts outcomes', async () => {
    jobs.step = (id) => {
      if (id === 's2') throw new Error('quota table missing');
    };
    const summary = await call(() => jobs.record());
    expect([...summary.ok].sort()).toEqual(['s1', 's3']);
    expect(summary.failed.map((f) => [f.tenantId, (f.error as Error).message])).toEqual([
      ['s2', 'quota table missing'],
    ]);
    expect(logger.errors).toEqual([
      'Scheduled job Jobs.record failed for tenant s2: quota table missing',
    ]);
    expect(logger.warnings.some((l) => /Jobs\.record: 2 tenant\(s\) ok, 1 failed/.test(l))).toBe(
      true,
    );
    const counter = await metrics.getSingleMetric('pg_tenancy_scheduled_runs_total')!.get();
    const value = (outcome: string) =>
      counter.values.find((v) => v.labels.job === 'Jobs.record' && v.labels.outcome === outcome)
        ?.value ?? 0;
    expect(value('failed')).toBe(1);
    expect(value('ok')).toBeGreaterThanOrEqual(2);
    const { resourceMetrics } = await reader.collect();
    const runs = resourceMetrics.scopeMetrics
      .flatMap((m) => m.metrics)
      .find((m) => m.descriptor.name === 'pg_tenancy.scheduled_runs')!;
    expect(runs.dataPoints).toContainEqual(
      expect.objectContaining({ attributes: { job: 'Jobs.record', outcome: 'failed' }, value: 1 }),
    );
  });

  it('does not run a tenant suspended or dropped after the fan-out began', async () => {
    await tenants.create('s5');
    await tenants.create('s6');
    const first = deferred<string>();
    jobs.step = async (id) => {
      if (jobs.seen.length > 1) return;
      first.resolve(id);
      // The first tenant's run suspends or drops two tenants that have not had their turn.
      const others = ['s5', 's6'].includes(id) ? ['s1', 's2'] : ['s5', 's6'];
      await tenants.suspend(others[0]);
      await tenants.drop(others[1]);
    };
    const summary = await call(() => jobs.serial());
    const firstId = await first.promise;
    const gone = ['s5', 's6'].includes(firstId) ? ['s1', 's2'] : ['s5', 's6'];
    expect([...summary.skipped].sort()).toEqual(gone);
    expect(jobs.seen.filter((id) => gone.includes(id))).toEqual([]);
    expect(summary.ok.length + summary.skipped.length).toBe(5);
    if (gone[0] === 's1') {
      await tenants.resume('s1');
      await tenants.create('s2');
    } else {
      await tenants.resume('s5');
      await tenants.drop('s5');
    }
  });

  it('skips a run that starts while the previous one still goes on, with a warning', async () => {
    const entered = deferred();
    const release = deferred();
    jobs.step = async () => {
      entered.resolve();
      await release.promise;
    };
    const running = call(() => jobs.serial());
    await entered.promise;
    const second = await call(() => jobs.serial());
    expect(second).toMatchObject({ overlapped: true, ok: [], failed: [], skipped: [] });
    expect(logger.warnings).toEqual([
      expect.stringContaining('Scheduled job one-at-a-time is still running'),
    ]);
    release.resolve();
    expect((await running).ok.length).toBe(3);
    jobs.seen.length = 0;
    jobs.step = () => undefined;
    expect((await call(() => jobs.serial())).ok.length).toBe(3);
  });

  it('fails with a typed error on an instance Nest did not build', async () => {
    const loose = new Jobs(undefined as never, undefined as never);
    await expect(loose.record()).rejects.toBeInstanceOf(TenantScheduleNotWiredError);
  });
});
