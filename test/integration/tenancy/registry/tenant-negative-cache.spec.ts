import { Test, type TestingModule } from '@nestjs/testing';
import { DatabaseModule, TenantNotFoundError, TenantService } from '../../../../lib/index.js';
import { useTestDatabase } from '../../../support/database.js';
import { RecordingLogger } from '../../../support/logs.js';

const NEGATIVE_CACHE_MS = 3_000;

describe('negative cache of unknown tenants', () => {
  const database = useTestDatabase();
  const apps: TestingModule[] = [];

  async function boot(
    extra: { directConnection?: { host: string; port: number }; negativeCacheMs?: number } = {},
  ) {
    const app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          directConnection: extra.directConnection,
          migrateOnStartup: false,
          tenancy: {
            registrySchema: 'negcache_reg',
            interceptor: false,
            negativeCacheMs: extra.negativeCacheMs,
          },
        }),
      ],
    })
      .setLogger(new RecordingLogger())
      .compile();
    apps.push(app);
    await app.init();
    return app.get(TenantService);
  }

  afterEach(async () => {
    await Promise.all(apps.splice(0).map((a) => a.close()));
  });

  it('answers not found for an unknown id until negativeCacheMs has passed, then finds it', async () => {
    const writer = await boot();
    // This instance's change listener can never connect (its direct connection points at a
    // socket that does not exist), so it cannot hear about new tenants: it looks misses up in
    // the table and remembers unknown ids for negativeCacheMs.
    const reader = await boot({
      directConnection: { host: '/nonexistent/pg-tenancy-test', port: 5432 },
      negativeCacheMs: NEGATIVE_CACHE_MS,
    });

    // On a very slow machine the tenant could be created after the window closed, so the
    // "still unknown" step could not be checked: try again with a fresh id then.
    for (let attempt = 1; ; attempt++) {
      const id = `late_${attempt}`;
      const missedAt = Date.now();
      await expect(reader.db(id)).rejects.toBeInstanceOf(TenantNotFoundError);
      await writer.create(id);
      expect(await writer.get(id)).toMatchObject({ id, status: 'active' });

      const askedAt = Date.now();
      const stillUnknown = await reader.db(id).then(
        () => false,
        (e: unknown) => e instanceof TenantNotFoundError,
      );
      // The entry was stored after `missedAt`, so before `missedAt + negativeCacheMs` it is live.
      if (askedAt < missedAt + NEGATIVE_CACHE_MS) {
        expect(stillUnknown).toBe(true);
      } else if (attempt < 3) {
        continue;
      } else {
        throw new Error('could not create a tenant within negativeCacheMs in 3 attempts');
      }

      const deadline = missedAt + NEGATIVE_CACHE_MS + 15_000;
      for (;;) {
        const db = await reader.db(id).catch((e: unknown) => {
          if (!(e instanceof TenantNotFoundError)) throw e;
          return undefined;
        });
        if (db) break;
        if (Date.now() > deadline) {
          throw new Error(
            `tenant ${id} was still unknown ${Date.now() - missedAt} ms after the miss`,
          );
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(Date.now()).toBeGreaterThanOrEqual(missedAt + NEGATIVE_CACHE_MS);
      expect(await (await reader.db(id)).fetchValue('SELECT 1')).toBe(1);
      return;
    }
  });
});
