import { Test, type TestingModule } from '@nestjs/testing';
import {
  DatabaseModule,
  getSchemaDbToken,
  SchemaDb,
  TenantService,
  TenantSuspendedError,
} from '../../../lib/index.js';
import { DrainController } from '../../../lib/advanced.js';
import { TenantRegistry } from '../../../lib/tenancy/index.js';
import { createTestDatabase, type TestDatabase } from '../../../lib/testing/index.js';
import { adminPool, useTestDatabase } from '../../support/database.js';

describe('fallbacks for transaction-mode poolers', () => {
  const database = useTestDatabase();
  const apps: TestingModule[] = [];
  let elsewhere: TestDatabase;

  beforeAll(async () => {
    elsewhere = await createTestDatabase();
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((a) => a.close()));
  });
  afterAll(() => elsewhere.drop());

  async function boot(options: { directConnection?: string } = {}) {
    const app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          ...options,
          migrateOnStartup: false,
          tenancy: { registrySchema: 'fallback_reg', interceptor: false, pollIntervalMs: 100 },
        }),
      ],
    }).compile();
    apps.push(app);
    await app.init();
    return app;
  }

  it('polls the registry when change notifications never arrive on the listener connection', async () => {
    const writer = await boot();
    // The listener of this instance sits in another database, so NOTIFYs sent through its pool
    // never reach it, as with LISTEN through PgBouncer in transaction mode.
    const reader = await boot({ directConnection: elsewhere.url });
    const registry = reader.get(TenantRegistry);
    expect(registry.synced).toBe(false);

    const tenants = writer.get(TenantService);
    await tenants.create('polled');
    const readerTenants = reader.get(TenantService);
    const deadline = Date.now() + 5_000;
    while (!(await registry.find('polled'))) {
      if (Date.now() > deadline)
        throw new Error('the new tenant never reached the polling instance');
      await new Promise((r) => setTimeout(r, 20));
    }
    await tenants.suspend('polled');
    for (;;) {
      const error = await readerTenants.db('polled').catch((e: unknown) => e);
      if (error instanceof TenantSuspendedError) break;
      if (Date.now() > deadline)
        throw new Error('the suspension never reached the polling instance');
      await new Promise((r) => setTimeout(r, 20));
    }
  });

  it('closes a connection left idle in a transaction past the drain timeout', async () => {
    const app = await boot();
    const db = app.get<SchemaDb>(getSchemaDbToken());
    const drain = app.get(DrainController);
    const admin = adminPool(database.current.url);
    try {
      let resume!: () => void;
      const gate = new Promise<void>((resolve) => (resume = resolve));
      let inside!: () => void;
      const entered = new Promise<void>((resolve) => (inside = resolve));
      const open = drain.admit(() =>
        db.transaction(async (tx) => {
          await tx.execute('CREATE TABLE idle_tx (id int)');
          inside();
          await gate; // idle in transaction, holding a lock
          await tx.execute('INSERT INTO idle_tx VALUES (1)');
        }),
      );
      open.catch(() => undefined);
      await entered;
      const report = await drain.drain(100, 100);
      expect(report).toMatchObject({ cancelled: 1, drained: 0, connections: 1 });
      resume();
      await expect(open).rejects.toThrow();
      // The transaction was rolled back by the server: its table does not exist.
      expect((await admin.query("SELECT to_regclass('idle_tx') AS t")).rows[0].t).toBeNull();
      await expect(db.fetchValue('SELECT 1')).rejects.toThrow(/shutting down/);
    } finally {
      await admin.end();
    }
  });
});
