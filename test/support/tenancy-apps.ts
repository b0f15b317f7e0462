import { Test, type TestingModule } from '@nestjs/testing';
import pg from 'pg';
import { DatabaseModule, TenantService, type TenancyOptions } from '../../lib/index.js';
import { exactFingerprint } from '../../lib/catalog/fingerprints.js';
import { adminPool, useTestDatabase } from './database.js';
import { useMigrationFolders } from './migrations.js';

/**
 * A database of the file's own and apps booted on it with tenancy under `registrySchema`, their
 * warnings and log lines collected. After each test the apps close and every schema but `public` is dropped.
 */
export function useTenancyApps(registrySchema: string) {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  const apps: TestingModule[] = [];
  const warnings: string[] = [];
  const logs: string[] = [];
  const state = {} as { admin: pg.Pool };

  async function boot(tenancy: TenancyOptions): Promise<TenantService> {
    const app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          pool: { max: 4 },
          tenancy: { interceptor: false, registrySchema, ...tenancy },
        }),
      ],
    })
      .setLogger({
        log: (message: unknown) => {
          logs.push(String(message));
        },
        error: () => undefined,
        warn: (message: unknown) => {
          warnings.push(String(message));
        },
      })
      .compile();
    apps.push(app);
    await app.init();
    return app.get(TenantService);
  }

  async function closeApps(): Promise<void> {
    await Promise.all(apps.splice(0).map((app) => app.close()));
  }

  beforeAll(() => {
    state.admin = adminPool(database.current.url);
  });
  afterEach(async () => {
    await closeApps();
    const { rows } = await state.admin.query<{ nspname: string }>(
      `SELECT nspname FROM pg_namespace
        WHERE nspname NOT LIKE 'pg\\_%' AND nspname NOT IN ('public', 'information_schema')`,
    );
    for (const { nspname } of rows) {
      await state.admin.query(`DROP SCHEMA IF EXISTS "${nspname}" CASCADE`);
    }
    warnings.length = 0;
    logs.length = 0;
  });
  afterAll(() => state.admin?.end());

  return {
    database,
    folder,
    boot,
    closeApps,
    warnings,
    logs,
    /** A pool for direct checks. */
    get admin(): pg.Pool {
      return state.admin;
    },
    /** `exactFingerprint` of `schema`. */
    async fingerprint(schema: string): Promise<string[]> {
      const client = await state.admin.connect();
      try {
        return await exactFingerprint(client, schema);
      } finally {
        client.release();
      }
    },
    /** `schema`'s migration history: version and name, in order. */
    async history(schema: string): Promise<string[]> {
      const { rows } = await state.admin.query<{ name: string }>(
        `SELECT name FROM "${schema}".schema_migrations ORDER BY version`,
      );
      return rows.map((r) => r.name);
    },
    /** Oid of `schema`, `undefined` when it does not exist. */
    async schemaOid(schema: string): Promise<string | undefined> {
      const { rows } = await state.admin.query<{ oid: string }>(
        'SELECT oid::text FROM pg_namespace WHERE nspname = $1',
        [schema],
      );
      return rows[0]?.oid;
    },
  };
}
