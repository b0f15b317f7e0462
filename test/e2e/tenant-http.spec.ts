import {
  Controller,
  Get,
  Injectable,
  Module,
  type CanActivate,
  type INestApplication,
  type MiddlewareConsumer,
  type NestModule,
} from '@nestjs/common';
import { UnauthorizedException, UseGuards, type ExecutionContext } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import pg from 'pg';
import {
  DatabaseModule,
  fromHeader,
  fromPathParam,
  fromUser,
  getPoolToken,
  InjectTenantDb,
  NoTenant,
  SchemaDb,
  TenantContext,
  TenantMiddleware,
  TenantService,
  type TenancyOptions,
  type TenantResolver,
} from '../../lib/index.js';
import { TenantRegistry } from '../../lib/tenancy/index.js';
import { adminPool, useTestDatabase } from '../support/database.js';
import { useMigrationFolders } from '../support/migrations.js';

@Injectable()
class NotesService {
  constructor(@InjectTenantDb() private readonly db: SchemaDb) {}
  list() {
    return this.db.fetchAll<{ tenant: string; body: string }>(
      'SELECT tenant, body FROM {{tables.notes}} ORDER BY id',
    );
  }
  /** Reads in a transaction with an await in between, to interleave requests on the pool. */
  listInTransaction() {
    return this.db.transaction(async (tx) => {
      await tx.fetchValue('SELECT 1');
      return tx.fetchAll<{ tenant: string }>('SELECT tenant FROM {{tables.notes}}');
    });
  }
}

@Controller('notes')
class NotesController {
  constructor(private readonly notes: NotesService) {}
  @Get() list() {
    return this.notes.list();
  }
  @Get('tx') listTx() {
    return this.notes.listInTransaction();
  }
}

@Controller('health')
@NoTenant()
class HealthController {
  constructor(
    private readonly notes: NotesService,
    private readonly context: TenantContext,
  ) {}
  @Get() health() {
    return { ok: true };
  }
  /** What a @NoTenant() handler sees of the tenant a request names. */
  @Get('tenant') async tenant() {
    const tenant = this.context.current?.tenantId ?? null;
    try {
      return { tenant, rows: (await this.notes.list()).length };
    } catch (err) {
      return { tenant, error: (err as Error).name };
    }
  }
}

/** The tenant in the path: `/t/c2/notes`. */
@Controller('t/:tenant/notes')
class PathNotesController {
  constructor(private readonly notes: NotesService) {}
  @Get() list() {
    return this.notes.list();
  }
}

/** "The path param, else the header": a resolver apps write themselves. */
const paramElseHeader: TenantResolver = (ctx) =>
  fromPathParam('tenant')(ctx) ?? fromHeader('x-tenant-id')(ctx);

/** A guard that needs the tenant: it only sees it with the middleware mount. */
@Injectable()
class TenantSeenGuard implements CanActivate {
  static seen: Array<string | undefined> = [];
  constructor(private readonly context: TenantContext) {}
  canActivate() {
    TenantSeenGuard.seen.push(this.context.current?.tenantId);
    return true;
  }
}

@Controller('guarded')
@UseGuards(TenantSeenGuard)
class GuardedController {
  constructor(private readonly notes: NotesService) {}
  @Get() list() {
    return this.notes.list();
  }
}

/** Stands in for an app's authentication (passport, a JWT guard): sets request.user. */
@Injectable()
class FakeAuthGuard implements CanActivate {
  canActivate(ctx: ExecutionContext) {
    const req = ctx
      .switchToHttp()
      .getRequest<{ headers: Record<string, string | undefined>; user?: unknown }>();
    const user = req.headers['x-test-user'];
    if (user !== undefined) req.user = JSON.parse(user) as unknown;
    return true;
  }
}

const FILES = {
  '001_notes.sql':
    'CREATE TABLE {{tables.notes}} (id serial PRIMARY KEY, tenant text NOT NULL, body text NOT NULL);',
};

/**
 * Volume makes these tests meaningful, not speed: on a busy machine (a CPU hog beside the run,
 * a 2-core CI box) they take longer and must still pass, so their deadline is generous. Speed
 * is measured in bench/.
 */
const SLOW_MS = 600_000;

describe('tenant routing over HTTP', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;
  let migrations: string;
  const apps: INestApplication[] = [];

  async function start(options: { middleware?: boolean; tenancy?: Partial<TenancyOptions> } = {}) {
    @Module({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          // 64 clients share 8 connections: on a starved machine a request may wait long for
          // one. These tests check routing, not latency, so waits fail only when truly stuck.
          pool: { max: 8, acquireTimeoutMs: 120_000 },
          // The registry's heartbeats use the pool: keep them out of the acquire counts below.
          tenancy: {
            migrations,
            registrySchema: 'http_reg',
            maxStalenessMs: 600_000,
            ...options.tenancy,
          },
        }),
      ],
      controllers: [NotesController, HealthController, GuardedController, PathNotesController],
      providers: [NotesService, TenantSeenGuard, { provide: APP_GUARD, useClass: FakeAuthGuard }],
    })
    class AppModule implements NestModule {
      configure(consumer: MiddlewareConsumer) {
        if (options.middleware) consumer.apply(TenantMiddleware).forRoutes('*');
      }
    }
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    apps.push(app);
    await app.listen(0, '127.0.0.1');
    const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
    const get = async (path: string, tenant?: string, user?: unknown) => {
      const headers: Record<string, string> = {};
      if (tenant !== undefined) headers['x-tenant-id'] = tenant;
      if (user !== undefined) headers['x-test-user'] = JSON.stringify(user);
      const res = await fetch(`${url}${path}`, { headers });
      return { status: res.status, body: await res.json() };
    };
    return { app, get, tenants: app.get(TenantService), registry: app.get(TenantRegistry) };
  }

  beforeAll(async () => {
    admin = adminPool(database.current.url);
    migrations = await folder(FILES);
    const { tenants, app } = await start();
    const ids = Array.from({ length: 50 }, (_, i) => `c${i}`);
    for (const id of ids) {
      await tenants.create(id);
      const db = await tenants.db(id);
      await db.execute(
        "INSERT INTO {{tables.notes}} (tenant, body) SELECT $1, $1 || '-' || n FROM generate_series(1, 3) n",
        [id],
      );
    }
    await tenants.create('frozen');
    await tenants.suspend('frozen');
    await app.close();
    apps.length = 0;
  }, SLOW_MS);
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
  });
  afterAll(() => admin.end());

  it('serves each tenant its own rows', async () => {
    const { get } = await start();
    const res = await get('/notes', 'c7');
    expect(res.status).toBe(200);
    expect(res.body).toEqual([1, 2, 3].map((n) => ({ tenant: 'c7', body: `c7-${n}` })));
  });

  it('answers 400 for a missing or malformed id, 404 unknown, 403 suspended, and runs no SQL for them', async () => {
    const { get, app } = await start();
    const pool = app.get<pg.Pool>(getPoolToken());
    let acquired = 0;
    pool.on('acquire', () => acquired++);

    const missing = await get('/notes');
    expect(missing.status).toBe(400);
    expect(missing.body).toMatchObject({
      error: 'TenantRequiredError',
      message: expect.stringContaining('x-tenant-id'),
    });

    const hostile = '<script>alert(1)</script>';
    const malformed = await get('/notes', hostile);
    expect(malformed.status).toBe(400);
    expect(JSON.stringify(malformed.body)).not.toContain('<script>');
    expect(malformed.body).toMatchObject({ error: 'InvalidTenantIdError' });

    // A flood of well-formed but unknown ids: answered from the synced registry.
    for (let i = 0; i < 50; i++) expect((await get('/notes', `nobody${i}`)).status).toBe(404);
    expect((await get('/notes', 'frozen')).body).toMatchObject({
      statusCode: 403,
      error: 'TenantSuspendedError',
    });
    expect(acquired).toBe(0);
  });

  describe('who may enter a tenant', () => {
    it('answers 403 from tenancy.authorize before the tenant is looked up or any SQL runs', async () => {
      const calls: string[] = [];
      const { get, app } = await start({
        tenancy: {
          authorize: (tenantId, ctx) => {
            calls.push(tenantId);
            const user = ctx.switchToHttp().getRequest<{ user?: { tenants: string[] } }>().user;
            if (tenantId === 'c9') throw new Error('membership service down');
            if (tenantId === 'c8') throw new UnauthorizedException('sign in again');
            if (tenantId === 'c7') return 'yes' as unknown as boolean; // only true lets in
            return user?.tenants.includes(tenantId) === true;
          },
        },
      });
      const pool = app.get<pg.Pool>(getPoolToken());
      let acquired = 0;
      pool.on('acquire', () => acquired++);
      const member = { tenants: ['c1'] };

      for (const [tenant, user] of [
        ['c2', member], // another tenant
        ['c1', undefined], // no principal
        ['nobody_here', member], // unknown: 403, not 404, so ids cannot be probed
        ['c9', member], // the hook threw
        ['c7', member], // a truthy non-boolean
      ] as const) {
        const res = await get('/notes', tenant, user);
        expect({ tenant, status: res.status, body: res.body }).toMatchObject({
          tenant,
          status: 403,
          body: { error: 'TenantAccessDeniedError' },
        });
      }
      expect((await get('/notes', 'c8', member)).status).toBe(401);
      expect((await get('/notes', 'Not OK!', member)).status).toBe(400);
      expect(calls).not.toContain('Not OK!');
      expect(acquired).toBe(0);

      const allowed = await get('/notes', 'c1', member);
      expect(allowed.status).toBe(200);
      expect(allowed.body).toEqual([1, 2, 3].map((n) => ({ tenant: 'c1', body: `c1-${n}` })));
    });

    it('applies tenancy.authorize in the middleware mount too', async () => {
      const { get } = await start({
        middleware: true,
        tenancy: { authorize: (tenantId) => tenantId === 'c1' },
      });
      expect((await get('/guarded', 'c2')).body).toMatchObject({
        error: 'TenantAccessDeniedError',
      });
      expect((await get('/guarded', 'c1')).status).toBe(200);
    });

    it('takes the tenant from the authenticated principal with fromUser(), ignoring the header', async () => {
      const { get } = await start({ tenancy: { resolver: fromUser('org.tenant') } });
      const res = await get('/notes', 'c4', { org: { tenant: 'c3' } });
      expect(res.status).toBe(200);
      expect(res.body).toEqual([1, 2, 3].map((n) => ({ tenant: 'c3', body: `c3-${n}` })));
      const anonymous = await get('/notes', 'c4');
      expect(anonymous).toMatchObject({
        status: 400,
        body: { error: 'TenantRequiredError', message: expect.stringContaining('sign in') },
      });
    });
  });

  it('lets @NoTenant() routes run without a tenant', async () => {
    const { get } = await start();
    expect(await get('/health')).toEqual({ status: 200, body: { ok: true } });
  });

  describe('under TenantMiddleware (the edges the docs name)', () => {
    const rowsOf = (tenant: string) => [1, 2, 3].map((n) => ({ tenant, body: `${tenant}-${n}` }));

    it.each([
      ['with the interceptor', {}],
      ['with interceptor: false', { interceptor: false }],
    ])(
      '%s, a "path param, else header" resolver takes the path param, which the middleware cannot see',
      async (_mount, tenancy: Partial<TenancyOptions>) => {
        const { get } = await start({
          middleware: true,
          tenancy: { ...tenancy, resolver: paramElseHeader },
        });
        expect(await get('/t/c2/notes', 'c1')).toEqual({ status: 200, body: rowsOf('c2') });
        expect(await get('/t/c2/notes')).toEqual({ status: 200, body: rowsOf('c2') });
        expect(await get('/notes', 'c1')).toEqual({ status: 200, body: rowsOf('c1') });
        expect((await get('/t/nobody/notes', 'c1')).status).toBe(404);
      },
    );

    it.each([
      ['with the interceptor', {}],
      ['with interceptor: false', { interceptor: false }],
    ])(
      '%s, a @NoTenant() route runs without the tenant the request names',
      async (_mount, tenancy: Partial<TenancyOptions>) => {
        const { get } = await start({ middleware: true, tenancy });
        expect(await get('/health/tenant', 'c1')).toEqual({
          status: 200,
          body: { tenant: null, error: 'TenantContextMissingError' },
        });
        expect(await get('/health/tenant')).toEqual({
          status: 200,
          body: { tenant: null, error: 'TenantContextMissingError' },
        });
      },
    );

    it('with interceptor: false, a tenant route called without an id answers 400, not 500', async () => {
      const { get } = await start({ middleware: true, tenancy: { interceptor: false } });
      const res = await get('/notes');
      expect(res).toEqual({
        status: 400,
        body: {
          statusCode: 400,
          error: 'TenantRequiredError',
          message: expect.stringContaining('x-tenant-id') as unknown,
        },
      });
      expect(await get('/health')).toEqual({ status: 200, body: { ok: true } });
      expect(await get('/notes', 'c5')).toEqual({ status: 200, body: rowsOf('c5') });
    });
  });

  it(
    'never mixes tenants under 5,000 interleaved requests across 50 tenants',
    async () => {
      const { get } = await start();
      const total = 5_000;
      const concurrency = 64;
      let next = 0;
      const leaks: string[] = [];
      let served = 0;
      const worker = async () => {
        while (next < total) {
          const n = next++;
          const tenant = `c${(n * 7919) % 50}`;
          const path = n % 3 === 0 ? '/notes/tx' : '/notes';
          const res = await get(path, tenant);
          const rows = res.body as Array<{ tenant: string }>;
          if (res.status !== 200 || rows.length !== 3 || rows.some((r) => r.tenant !== tenant)) {
            // (A status other than 200 is reported with its body, to tell a leak from a stall.)
            leaks.push(`${tenant} got ${res.status} ${JSON.stringify(res.body)}`);
          }
          served++;
        }
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
      expect(served).toBe(total);
      expect(leaks).toEqual([]);
    },
    SLOW_MS,
  );

  it('gives guards the tenant with the middleware mount, and not without it', async () => {
    TenantSeenGuard.seen = [];
    const withMiddleware = await start({ middleware: true });
    expect((await withMiddleware.get('/guarded', 'c1')).status).toBe(200);
    expect((await withMiddleware.get('/guarded', 'nobody')).status).toBe(404);
    expect((await withMiddleware.get('/health')).status).toBe(200);
    await withMiddleware.app.close();
    const plain = await start();
    expect((await plain.get('/guarded', 'c1')).status).toBe(200);
    expect(TenantSeenGuard.seen).toEqual(['c1', undefined]);
  });

  it('propagates a suspension made by another instance by notification, also after the listener reconnects', async () => {
    const a = await start();
    const b = await start();
    expect((await b.get('/notes', 'c3')).status).toBe(200);

    // maxStalenessMs is 600 s here, so a change B sees within this deadline can only have come
    // from the registry notification (not from the staleness re-check). The deadline is a
    // failure bound for a stuck listener, not a latency assertion.
    const waitFor = async (status: number, tenant: string) => {
      const started = Date.now();
      for (;;) {
        const res = await b.get('/notes', tenant);
        if (res.status === status) return;
        if (Date.now() - started > 20_000) throw new Error(`still ${res.status} after 20 s`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };

    await a.tenants.suspend('c3');
    await waitFor(403, 'c3');
    await a.tenants.resume('c3');
    await waitFor(200, 'c3');

    // Kill B's listener connection; it reconnects, reloads, and keeps receiving changes.
    await admin.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'nestjs-pg-tenancy:listener'`,
    );
    await b.registry.whenSynced();
    await a.tenants.suspend('c4');
    await waitFor(403, 'c4');
    await a.tenants.resume('c4');
  });
});
