// TenantAdmission.check(id, admitted): long-lived work admitted once (a session) must learn that
// its tenant was dropped and created again in the other tier, or its next unit of work reaches the
// old home: a dropped schema (a driver error, not a typed refusal), or the pooled rows of a tenant
// that now lives in its own schema (written where the tenant no longer reads). Found by the leak
// fuzzer's session channel with pooled tenants (seed 1395347302, 3,000 operations).
import { Test, type TestingModule } from '@nestjs/testing';
import {
  DatabaseModule,
  TenantAdmission,
  TenantContext,
  TenantNotFoundError,
  TenantService,
} from '../../../lib/index.js';
import { adminPool, useTestDatabase } from '../../support/database.js';
import { useMigrationFolders } from '../../support/migrations.js';

describe('TenantAdmission.check with the admitted scope', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let app: TestingModule;
  let admission: TenantAdmission;
  let tenants: TenantService;

  beforeAll(async () => {
    app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          tenancy: {
            migrations: await folder({ '001_t.sql': 'CREATE TABLE {{tables.t}} (v text);' }),
            registrySchema: 'adm_home_reg',
            interceptor: false,
            pooled: true,
            maxStalenessMs: 100,
          },
        }),
      ],
    }).compile();
    await app.init();
    admission = app.get(TenantAdmission);
    tenants = app.get(TenantService);
  });
  afterAll(() => app?.close());

  const write = (scope: Awaited<ReturnType<TenantAdmission['admit']>>, v: string) =>
    admission.run(scope, () =>
      app.get(TenantContext).requireDb().execute('INSERT INTO {{tables.t}} VALUES ($1)', [v]),
    );

  it('refuses a session whose schema tenant came back pooled (its old home is a dropped schema)', async () => {
    await tenants.create('s1');
    const session = await admission.admit('s1', { source: 'session' });
    await write(session, 'before');
    await tenants.drop('s1');
    await tenants.create('s1', { tier: 'pooled' });
    // By id alone the tenant may be served; the session's scope reaches a schema that is gone.
    expect(await admission.check('s1')).toBeNull();
    const refused = await admission.check('s1', session);
    expect(refused).toBeInstanceOf(TenantNotFoundError);
    // Without the check too: the drop retired the session's manager, so its work is refused,
    // typed, and sends nothing (before, it met the dropped schema: an untyped driver error).
    await expect(write(session, 'after')).rejects.toBeInstanceOf(TenantNotFoundError);
    // Admitted again, the work reaches the new home.
    const again = await admission.admit('s1', { source: 'session' });
    expect(await admission.check('s1', again)).toBeNull();
    await write(again, 'new home');
  });

  it('refuses a session whose pooled tenant came back in its own schema (its old home is the pooled rows)', async () => {
    await tenants.create('p1', { tier: 'pooled' });
    const session = await admission.admit('p1', { source: 'session' });
    await tenants.drop('p1');
    await tenants.create('p1');
    expect(await admission.check('p1', session)).toBeInstanceOf(TenantNotFoundError);
    // Without the check the work is refused too (the drop retired the manager): before, it was
    // served, into pooled rows of a tenant no longer pooled.
    await expect(write(session, 'stray')).rejects.toBeInstanceOf(TenantNotFoundError);
    const admin = adminPool(database.current.url, 1);
    try {
      const { rows } = await admin.query(`SELECT v FROM tenancy_pooled.t WHERE tenant_id = 'p1'`);
      expect(rows).toEqual([]);
    } finally {
      await admin.end();
    }
    expect(
      await (await tenants.db('p1')).fetchValue('SELECT count(*)::int FROM {{tables.t}}'),
    ).toBe(0);
  });

  it('keeps a session whose tenant stayed where it was (suspended and resumed, or re-read)', async () => {
    for (const tier of ['schema', 'pooled'] as const) {
      const id = `k_${tier}`;
      await tenants.create(id, { tier });
      const session = await admission.admit(id, { source: 'session' });
      await tenants.suspend(id);
      await tenants.resume(id);
      expect(await admission.check(id, session)).toBeNull();
      await write(session, 'kept');
    }
  });
});
