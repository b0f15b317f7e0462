// Work admitted for a tenant that is dropped, and being created again, before its query runs:
// the query finds no table, and the answer is the typed TenantNotFoundError a new unit of work
// would get (the tenant cannot be served now), never the driver's missing-table error. Found by
// the leak fuzzer (test/integration/integrations/fuzzer), which drops and re-creates tenants
// under work in flight.
import { Test, type TestingModule } from '@nestjs/testing';
import type pg from 'pg';
import {
  DatabaseModule,
  TenantAdmission,
  TenantNotFoundError,
  TenantService,
} from '../../../../lib/index.js';
import { adminPool, useTestDatabase } from '../../../support/database.js';
import { useMigrationFolders } from '../../../support/migrations.js';

describe('work whose tenant was dropped and is being created again', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let app: TestingModule;
  let admin: pg.Pool;

  beforeAll(async () => {
    admin = adminPool(database.current.url);
    app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          tenancy: {
            migrations: await folder({ '001_t.sql': 'CREATE TABLE {{tables.t}} (v text);' }),
            registrySchema: 'recreate_reg',
            interceptor: false,
          },
        }),
      ],
    }).compile();
    await app.init();
  });
  afterAll(async () => {
    await app?.close();
    await admin?.end();
  });

  it('fails with TenantNotFoundError, not the missing table', async () => {
    const tenants = app.get(TenantService);
    const admission = app.get(TenantAdmission);
    await tenants.create('r1');
    const scope = await admission.admit('r1', { source: 'job 1' });
    await tenants.drop('r1');
    // Another instance's create('r1') has written its registry row and not finished yet.
    await admin.query(
      "INSERT INTO recreate_reg.tenants (id, schema_name) VALUES ('r1', 'tenant_r1')",
    );
    await expect(
      admission.run(scope, () => scope.db.fetchValue('SELECT count(*) FROM {{tables.t}}')),
    ).rejects.toBeInstanceOf(TenantNotFoundError);
  });
});
