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
import { UseGuards } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import pg from 'pg';
import {
  DatabaseModule,
  getPoolToken,
  InjectTenantDb,
  NoTenant,
  SchemaDb,
  TenantContext,
  TenantMiddleware,
  TenantRegistry,
  TenantService,
} from '../../lib/index.js';
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
  @Get() health() {
    return { ok: true };
  }
}

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

const FILES = {
  '001_notes.sql':
    'CREATE TABLE {{tables.notes}} (id serial PRIMARY KEY, tenant text NOT NULL, body text NOT NULL);',
};

describe('tenant routing over HTTP', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;
  let migrations: string;
  const apps: INestApplication[] = [];

  async function start(options: { middleware?: boolean } = {}) {
    @Module({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          pool: { max: 8 },
          tenancy: { migrations, registrySchema: 'http_reg' },
        }),
      ],
      controllers: [NotesController, HealthController, GuardedController],
      providers: [NotesService, TenantSeenGuard],
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
    const get = async (path: string, tenant?: string) => {
      const res = await fetch(`${url}${path}`, {
        headers: tenant === undefined ? {} : { 'x-tenant-id': tenant },
      });
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
  });
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

  it('lets @NoTenant() routes run without a tenant', async () => {
    const { get } = await start();
    expect(await get('/health')).toEqual({ status: 200, body: { ok: true } });
  });

  it('never mixes tenants under 5,000 interleaved requests across 50 tenants', async () => {
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
          leaks.push(`${tenant} got ${res.status} ${JSON.stringify(res.body)}`);
        }
        served++;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    expect(served).toBe(total);
    expect(leaks).toEqual([]);
  });

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

  it('propagates a suspension made by another instance within a second, also after the listener reconnects', async () => {
    const a = await start();
    const b = await start();
    expect((await b.get('/notes', 'c3')).status).toBe(200);

    const waitFor = async (status: number, tenant: string) => {
      const started = Date.now();
      for (;;) {
        const res = await b.get('/notes', tenant);
        if (res.status === status) return Date.now() - started;
        if (Date.now() - started > 5_000) throw new Error(`still ${res.status} after 5 s`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };

    await a.tenants.suspend('c3');
    expect(await waitFor(403, 'c3')).toBeLessThan(1_000);
    await a.tenants.resume('c3');
    expect(await waitFor(200, 'c3')).toBeLessThan(1_000);

    // Kill B's listener connection; it reconnects, reloads, and keeps receiving changes.
    await admin.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'nestjs-pg-tenancy:listener'",
    );
    await b.registry.whenSynced();
    await a.tenants.suspend('c4');
    expect(await waitFor(403, 'c4')).toBeLessThan(1_000);
    await a.tenants.resume('c4');
  });
});
