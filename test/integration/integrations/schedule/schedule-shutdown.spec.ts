// @ForEachTenant() and graceful shutdown: the tenants under way finish, no more start, and a run
// that begins after shutdown began is refused with DatabaseShuttingDownError.
import { Injectable } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import {
  DatabaseModule,
  DatabaseShuttingDownError,
  TenantAdmission,
  TenantService,
} from '../../../../lib/index.js';
import { DrainController } from '../../../../lib/advanced.js';
import {
  ForEachTenant,
  TenantScheduleModule,
  type TenantScheduleSummary,
} from '../../../../lib/integrations/schedule/index.js';
import { useTestDatabase } from '../../../support/database.js';
import { useMigrationFolders } from '../../../support/migrations.js';
import { RecordingLogger } from '../../../support/logs.js';

function deferred<T = void>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

@Injectable()
class Digest {
  readonly entered = deferred<string>();
  readonly release = deferred();
  readonly seen: string[] = [];
  constructor(private readonly admission: TenantAdmission) {}

  @ForEachTenant({ concurrency: 1 })
  async send(): Promise<void> {
    const tenantId = this.admission.currentTenantId()!;
    this.seen.push(tenantId);
    this.entered.resolve(tenantId);
    await this.release.promise;
  }
}

describe('@ForEachTenant() at shutdown', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let app: TestingModule | undefined;

  afterAll(() => app?.close());

  it('lets the tenant under way finish and starts no other', async () => {
    app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          tenancy: {
            migrations: await folder({ '001_t.sql': 'CREATE TABLE {{tables.t}} (v text);' }),
            registrySchema: 'sched_stop_reg',
            interceptor: false,
          },
        }),
        TenantScheduleModule,
      ],
      providers: [Digest],
    })
      .setLogger(new RecordingLogger())
      .compile();
    await app.init();
    const tenants = app.get(TenantService);
    for (const id of ['d1', 'd2', 'd3']) await tenants.create(id);
    const digest = app.get(Digest);
    const drain = app.get(DrainController);
    const draining = new Promise<void>((resolve) => drain.onDrain(resolve));

    const run = digest.send() as unknown as Promise<TenantScheduleSummary>;
    const first = await digest.entered.promise;
    const closing = app.close();
    await draining;
    digest.release.resolve();
    const summary = await run;
    await closing;
    app = undefined;

    expect(summary.ok).toEqual([first]);
    expect([...summary.stopped, first].sort()).toEqual(['d1', 'd2', 'd3']);
    expect(digest.seen).toEqual([first]);
    await expect(digest.send()).rejects.toBeInstanceOf(DatabaseShuttingDownError);
  });
});
