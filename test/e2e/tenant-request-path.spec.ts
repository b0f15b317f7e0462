// The per-request path of tenant routes. A request whose resolver answers at once, with no
// authorize hook, whose tenant the registry's view vouches for, is admitted without a promise;
// these tests pin down what that shortcut must keep: the `@NoTenant()` decision of each route
// (read once per controller class and handler), one resolver call per request whatever path the
// request takes, the table asked when the view cannot vouch for a tenant, and the tenant-db
// proxy reaching the tenant of its own flow, rejecting (never throwing) outside one.
import { Controller, Get, Inject, Injectable, Module, type INestApplication } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import {
  DatabaseModule,
  fromHeader,
  getTenantDbToken,
  InjectTenantDb,
  NoTenant,
  SchemaDb,
  TenantContext,
  TenantContextMissingError,
  TenantService,
  type TenancyOptions,
  type TenantResolver,
} from '../../lib/index.js';
import { DrainController } from '../../lib/advanced.js';
import { TenantRegistry } from '../../lib/tenancy/index.js';
import { useTestDatabase } from '../support/database.js';
import { useMigrationFolders } from '../support/migrations.js';

const REGISTRY = 'path_reg';
const FILES = { '001_who.sql': 'CREATE TABLE {{tables.who}} (tenant text NOT NULL);' };

@Injectable()
class WhoService {
  constructor(@InjectTenantDb() private readonly db: SchemaDb) {}
  /** The tenant whose table answers, read through the tenant-db proxy. */
  who() {
    return this.db.fetchValue<string>('SELECT tenant FROM {{tables.who}}');
  }
}

/** One handler, inherited by a `@NoTenant()` controller and by a tenant one. */
class WhereController {
  constructor(@Inject(TenantContext) private readonly context: TenantContext) {}
  @Get() where() {
    return { tenant: this.context.current?.tenantId ?? null };
  }
}

@Controller('inherited/open')
@NoTenant()
class OpenWhereController extends WhereController {}

@Controller('inherited/closed')
class ClosedWhereController extends WhereController {}

/** Two handlers of one class, one of them `@NoTenant()`. */
@Controller('mixed')
class MixedController {
  constructor(
    private readonly context: TenantContext,
    private readonly who: WhoService,
  ) {}
  @Get('open') @NoTenant() open() {
    return { tenant: this.context.current?.tenantId ?? null };
  }
  @Get('closed') async closed() {
    return { tenant: this.context.current?.tenantId ?? null, rows: await this.who.who() };
  }
}

describe('the per-request path of tenant routes', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  const apps: Array<INestApplication | TestingModule> = [];
  let migrations: string;

  async function start(
    tenancy: Partial<TenancyOptions> = {},
    extra: { directConnection?: { host: string; port: number } } = {},
  ) {
    @Module({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          ...extra,
          ...(extra.directConnection ? { migrateOnStartup: false } : {}),
          pool: { max: 4 },
          tenancy: { migrations, registrySchema: REGISTRY, ...tenancy },
        }),
      ],
      controllers: [OpenWhereController, ClosedWhereController, MixedController],
      providers: [WhoService],
    })
    class AppModule {}
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    apps.push(app);
    await app.listen(0, '127.0.0.1');
    const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
    const get = async (path: string, tenant?: string) => {
      const res = await fetch(`${url}${path}`, {
        headers: tenant === undefined ? {} : { 'x-tenant-id': tenant },
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    return { app, get, tenants: app.get(TenantService) };
  }

  async function createTenant(tenants: TenantService, id: string): Promise<void> {
    await tenants.create(id);
    await (await tenants.db(id)).execute('INSERT INTO {{tables.who}} (tenant) VALUES ($1)', [id]);
  }

  beforeAll(async () => {
    migrations = await folder(FILES);
    const { tenants } = await start();
    for (const id of ['p1', 'p2', 'p4']) await createTenant(tenants, id);
    await tenants.suspend('p4');
    await Promise.all(apps.splice(0).map((app) => app.close()));
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
  });

  it.each([
    ['the @NoTenant() routes first', true],
    ['the tenant routes first', false],
  ])(
    'keeps each route its own @NoTenant() decision, for an inherited handler and for two handlers of a class (%s)',
    async (_order, openFirst) => {
      const { get } = await start();
      const open = async () => {
        expect(await get('/inherited/open')).toEqual({ status: 200, body: { tenant: null } });
        expect(await get('/inherited/open', 'p1')).toEqual({ status: 200, body: { tenant: null } });
        expect(await get('/mixed/open')).toEqual({ status: 200, body: { tenant: null } });
        expect(await get('/mixed/open', 'p2')).toEqual({ status: 200, body: { tenant: null } });
      };
      const closed = async () => {
        expect(await get('/inherited/closed')).toMatchObject({
          status: 400,
          body: { error: 'TenantRequiredError' },
        });
        expect(await get('/inherited/closed', 'p1')).toEqual({
          status: 200,
          body: { tenant: 'p1' },
        });
        expect(await get('/mixed/closed')).toMatchObject({
          status: 400,
          body: { error: 'TenantRequiredError' },
        });
        expect(await get('/mixed/closed', 'p2')).toEqual({
          status: 200,
          body: { tenant: 'p2', rows: 'p2' },
        });
      };
      for (const step of openFirst ? [open, closed, open] : [closed, open, closed]) await step();
    },
  );

  it.each([
    ['answers at once', false, false],
    ['answers with a promise', true, false],
    ['answers at once, with an authorize hook', false, true],
    ['answers with a promise, with an authorize hook', true, true],
  ])('calls a resolver that %s once per request', async (_what, async, withAuthorize) => {
    const header = fromHeader('x-tenant-id');
    let calls = 0;
    const resolver: TenantResolver = (ctx) => {
      calls++;
      const id = header(ctx);
      return async ? Promise.resolve(id) : id;
    };
    const { get } = await start({
      resolver,
      ...(withAuthorize ? { authorize: (id: string) => id !== 'p2' } : {}),
    });
    expect(await get('/mixed/closed', 'p1')).toEqual({
      status: 200,
      body: { tenant: 'p1', rows: 'p1' },
    });
    expect((await get('/mixed/closed', 'nobody')).status).toBe(404);
    expect((await get('/mixed/closed', 'p2')).status).toBe(withAuthorize ? 403 : 200);
    expect((await get('/mixed/closed')).status).toBe(400);
    expect(calls).toBe(4);
  });

  it('asks the table for a tenant its view cannot vouch for, and then serves it', async () => {
    const { tenants: writer } = await start();
    // This instance's listener can never connect, so it cannot hear of tenants created after
    // it started: their ids miss the fast path and are looked up.
    let calls = 0;
    const header = fromHeader('x-tenant-id');
    const reader = await start(
      { resolver: (ctx) => (calls++, header(ctx)) },
      { directConnection: { host: '/nonexistent/pg-tenancy-test', port: 5432 } },
    );
    await createTenant(writer, 'p3');
    expect(await reader.get('/mixed/closed', 'p3')).toEqual({
      status: 200,
      body: { tenant: 'p3', rows: 'p3' },
    });
    expect(await reader.get('/inherited/closed', 'p3')).toEqual({
      status: 200,
      body: { tenant: 'p3' },
    });
    expect(calls).toBe(2);
    await writer.drop('p3');
  });

  it('the tenant-db proxy reaches the tenant of each flow, and outside one rejects instead of throwing', async () => {
    const { app, tenants } = await start({ interceptor: false });
    const proxy = app.get<SchemaDb>(getTenantDbToken());
    const seen = await Promise.all(
      ['p1', 'p2', 'p1', 'p2'].map((id) =>
        tenants.run(id, () => proxy.fetchValue<string>('SELECT tenant FROM {{tables.who}}')),
      ),
    );
    expect(seen).toEqual(['p1', 'p2', 'p1', 'p2']);
    expect(await tenants.run('p2', () => proxy.schema)).toBe('tenant_p2');

    for (const method of ['query', 'execute', 'fetchAll', 'fetchOne', 'fetchValue'] as const) {
      let pending: Promise<unknown> | undefined;
      const methods = proxy as unknown as Record<string, (sql: string) => Promise<unknown>>;
      expect(() => (pending = methods[method]('SELECT 1'))).not.toThrow();
      await expect(pending).rejects.toBeInstanceOf(TenantContextMissingError);
    }
    let tx: Promise<unknown> | undefined;
    expect(() => (tx = proxy.transaction(async () => 1))).not.toThrow();
    await expect(tx).rejects.toBeInstanceOf(TenantContextMissingError);
    expect(() => proxy.schema).toThrow(TenantContextMissingError);
  });

  it('counts every request as in-flight work until it ends, served or refused', async () => {
    const { app, get } = await start();
    const drain = app.get(DrainController);
    expect((await get('/mixed/closed', 'p1')).status).toBe(200);
    expect((await get('/mixed/closed', 'nobody')).status).toBe(404);
    expect((await get('/mixed/closed')).status).toBe(400);
    expect((await get('/mixed/open')).status).toBe(200);
    expect(drain.busy.requests).toBe(0);
  });

  it("the registry's synchronous lookup refuses what require() refuses, and defers to the table", async () => {
    // p4 was suspended before this instance started: no change of it is in flight.
    const { app } = await start();
    const registry = app.get(TenantRegistry);
    await registry.whenSynced();
    expect(registry.requireNow('p1')?.info.id).toBe('p1');
    expect(() => registry.requireNow('p4')).toThrow(
      expect.objectContaining({ name: 'TenantSuspendedError' }) as Error,
    );
    expect(() => registry.requireNow('nobody')).toThrow(
      expect.objectContaining({ name: 'TenantNotFoundError' }) as Error,
    );
    expect(() => registry.requireNow('Not OK!')).toThrow(
      expect.objectContaining({ name: 'InvalidTenantIdError' }) as Error,
    );
    // While a read of the id runs, the view does not answer for it.
    const reading = registry.refresh('p1');
    expect(registry.requireNow('p1')).toBeUndefined();
    await reading;
    expect(registry.requireNow('p1')?.info.id).toBe('p1');
  });
});
