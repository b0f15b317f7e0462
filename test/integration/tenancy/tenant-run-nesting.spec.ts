// A tenants.run() inside another run (or a request) is part of the work it runs in: the named
// tenant is current for its callback only, and a graceful shutdown that began meanwhile lets it
// run, as it lets the enclosing work finish.
import { Test, type TestingModule } from '@nestjs/testing';
import {
  DatabaseModule,
  DatabaseShuttingDownError,
  TenantContext,
  TenantService,
} from '../../../lib/index.js';
import { DrainController } from '../../../lib/advanced.js';
import { useTestDatabase } from '../../support/database.js';
import { useMigrationFolders } from '../../support/migrations.js';

describe('a nested tenants.run()', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let app: TestingModule;
  let tenants: TenantService;
  let context: TenantContext;

  beforeAll(async () => {
    app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          tenancy: {
            migrations: await folder({ '001_t.sql': 'CREATE TABLE {{tables.t}} (id int);' }),
            registrySchema: 'nest_reg',
            interceptor: false,
          },
        }),
      ],
    }).compile();
    await app.init();
    tenants = app.get(TenantService);
    context = app.get(TenantContext);
    await tenants.create('n1');
    await tenants.create('n2');
  });
  afterAll(() => app?.close());

  it('makes its tenant current for its callback only, the same one or another', async () => {
    const seen = await tenants.run('n1', async () => {
      const inner = await tenants.run('n2', () => context.current?.tenantId);
      const same = await tenants.run('n1', () => context.current?.tenantId);
      return [inner, same, context.current?.tenantId];
    });
    expect(seen).toEqual(['n2', 'n1', 'n1']);
  });

  it('runs when shutdown begins during the enclosing run, which may finish; a new run is refused', async () => {
    const drain = app.get(DrainController);
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    let proceed!: () => void;
    const gate = new Promise<void>((resolve) => (proceed = resolve));
    const job = tenants.run('n1', async () => {
      entered();
      await gate;
      const db = await tenants.db('n2');
      return tenants.run('n2', () =>
        db.fetchValue<number>('SELECT count(*)::int FROM {{tables.t}}'),
      );
    });
    await inside;
    const draining = drain.drain(10_000);
    await expect(tenants.run('n1', () => 'late')).rejects.toBeInstanceOf(DatabaseShuttingDownError);
    proceed();
    expect(await job).toBe(0);
    expect(await draining).toMatchObject({ requests: 1, cancelled: 0 });
  });
});
