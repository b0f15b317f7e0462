import { Module } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import pg from 'pg';
import { DatabaseModule, TenantService } from '../../../lib/index.js';
import { adminPool, useTestDatabase } from '../../support/database.js';
import { useMigrationFolders, write } from '../../support/migrations.js';

/**
 * Start-up applies named schemas' migrations — the root's and every forFeature module's — before
 * any tenant's, so a tenant migration may rely on a shared schema a feature module owns.
 */
describe('migration order at start-up', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;
  const apps: TestingModule[] = [];

  beforeAll(() => {
    admin = adminPool(database.current.url);
  });
  afterAll(async () => {
    for (const app of apps) await app.close();
    await admin.end();
  });

  it('runs root schemas, then forFeature schemas, then tenants', async () => {
    const tenantDir = await folder({
      '001_notes.sql': 'CREATE TABLE {{tables.notes}} (kind text);',
    });
    const rootDir = await folder({
      '001_plans.sql':
        "CREATE TABLE {{tables.plans}} (name text); INSERT INTO {{tables.plans}} VALUES ('free');",
    });
    const featureDir = await folder({
      // Depends on the root's named schema: runs after it.
      '001_kinds.sql':
        'CREATE TABLE {{tables.kinds}} (name text); INSERT INTO {{tables.kinds}} SELECT name FROM order_root.plans;',
    });
    const boot = async (withFeature: boolean) => {
      @Module({
        imports: withFeature
          ? [DatabaseModule.forFeature({ name: 'order_feature', migrations: featureDir })]
          : [],
      })
      class FeatureModule {}
      const app = await Test.createTestingModule({
        imports: [
          DatabaseModule.forRoot({
            connection: database.current.url,
            pool: { max: 4 },
            schemas: { order_root: { migrations: rootDir } },
            tenancy: {
              interceptor: false,
              registrySchema: 'order_registry',
              migrations: tenantDir,
              failOnMigrationError: true,
            },
          }),
          FeatureModule,
        ],
      }).compile();
      apps.push(app);
      await app.init();
      return app;
    };

    const first = await boot(false);
    await first.get(TenantService).create('acme');
    await first.close();

    // A tenant migration that reads the feature module's table: it fails unless the feature's
    // migrations ran first.
    await write(tenantDir, {
      '002_kinds.sql': 'INSERT INTO {{tables.notes}} SELECT name FROM order_feature.kinds;',
    });
    const second = await boot(true);
    const tenant = await second.get(TenantService).get('acme');
    expect(tenant).toMatchObject({ migratedVersion: 2, lastError: null });
    expect((await admin.query('SELECT kind FROM tenant_acme.notes')).rows).toEqual([
      { kind: 'free' },
    ]);
  });
});
