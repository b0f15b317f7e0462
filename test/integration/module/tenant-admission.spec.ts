// TenantAdmission: the checks a request gets, for work that arrives another way (jobs, sockets,
// messages), failing closed: no tenant, a malformed one, one the hook refuses, an unknown,
// suspended or dropped one, each a typed error; the work runs in its tenant's context.
import { Test, type TestingModule } from '@nestjs/testing';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host.js';
import {
  DatabaseModule,
  InvalidTenantIdError,
  TenantAccessDeniedError,
  TenantAdmission,
  TenantContext,
  TenantNotFoundError,
  TenantRequiredError,
  TenantService,
  TenantSuspendedError,
} from '../../../lib/index.js';
import { useTestDatabase } from '../../support/database.js';
import { useMigrationFolders } from '../../support/migrations.js';

describe('TenantAdmission', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let app: TestingModule;
  let admission: TenantAdmission;
  let tenants: TenantService;
  const asked: unknown[] = [];

  beforeAll(async () => {
    app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          tenancy: {
            migrations: await folder({ '001_t.sql': 'CREATE TABLE {{tables.t}} (v text);' }),
            registrySchema: 'adm_reg',
            interceptor: false,
            authorize: (id, ctx) => {
              asked.push([id, ctx.getArgs()[0]]);
              return id !== 'a2';
            },
          },
        }),
      ],
    }).compile();
    await app.init();
    admission = app.get(TenantAdmission);
    tenants = app.get(TenantService);
    for (const id of ['a1', 'a2', 'a3']) await tenants.create(id);
    await tenants.suspend('a3');
  });
  afterAll(() => app?.close());

  const job = (data: unknown) => new ExecutionContextHost([data]);

  it('runs the work in the admitted tenant, whose hook saw the work', async () => {
    asked.length = 0;
    const scope = await admission.admit('a1', { source: 'job 1', context: job({ n: 1 }) });
    const context = app.get(TenantContext);
    const seen = await admission.run(scope, async () => {
      await context.requireDb().execute(`INSERT INTO {{tables.t}} VALUES ('x')`);
      return [admission.currentTenantId(), context.current?.tenantId];
    });
    expect(seen).toEqual(['a1', 'a1']);
    expect(asked).toEqual([['a1', { n: 1 }]]);
    const db = await tenants.db('a1');
    expect(await db.fetchValue('SELECT count(*)::int FROM {{tables.t}}')).toBe(1);
    expect(admission.currentTenantId()).toBeUndefined();
  });

  it('fails closed with a typed error for each way a tenant cannot be served', async () => {
    for (const missing of [undefined, null, ''])
      await expect(admission.admit(missing, { source: 'job 7 of queue "mail"' })).rejects.toThrow(
        new TenantRequiredError('job 7 of queue "mail"'),
      );
    await expect(admission.admit('../x', { source: 's' })).rejects.toBeInstanceOf(
      InvalidTenantIdError,
    );
    await expect(admission.admit(42, { source: 's' })).rejects.toBeInstanceOf(InvalidTenantIdError);
    await expect(admission.admit('a2', { source: 's', context: job({}) })).rejects.toBeInstanceOf(
      TenantAccessDeniedError,
    );
    await expect(admission.admit('nope', { source: 's' })).rejects.toBeInstanceOf(
      TenantNotFoundError,
    );
    await expect(admission.admit('a3', { source: 's' })).rejects.toBeInstanceOf(
      TenantSuspendedError,
    );
  });

  it('tells long-lived work when its tenant is suspended or dropped', async () => {
    expect(await admission.check('a1')).toBeNull();
    expect(await admission.check('a3')).toBeInstanceOf(TenantSuspendedError);
    await tenants.create('a4');
    const scope = await admission.admit('a4', { source: 's' });
    await tenants.drop('a4');
    expect(await admission.check('a4')).toBeInstanceOf(TenantNotFoundError);
    await expect(
      admission.run(scope, () => scope.db.fetchValue('SELECT count(*) FROM {{tables.t}}')),
    ).rejects.toBeInstanceOf(TenantNotFoundError);
  });
});
