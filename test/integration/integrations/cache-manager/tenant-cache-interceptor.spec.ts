// TenantCacheInterceptor over real HTTP: a cached GET response is the tenant's own, where the
// plain CacheInterceptor (keyed by URL) hands one tenant's response to another.
import { Controller, Get, Module, UseInterceptors, type INestApplication } from '@nestjs/common';
import { CacheInterceptor, CacheModule } from '@nestjs/cache-manager';
import { Test } from '@nestjs/testing';
import { DatabaseModule, NoTenant, TenantAdmission, TenantService } from '../../../../lib/index.js';
import {
  TenantCacheInterceptor,
  TenantCacheModule,
} from '../../../../lib/integrations/cache-manager/index.js';
import { useTestDatabase } from '../../../support/database.js';
import { useMigrationFolders } from '../../../support/migrations.js';

const calls: string[] = [];

@Controller()
class ReportController {
  constructor(private readonly admission: TenantAdmission) {}

  #answer(route: string) {
    const tenant = this.admission.currentTenantId() ?? null;
    calls.push(`${route}:${tenant}`);
    return { tenant };
  }

  @Get('tenant-cached') @UseInterceptors(TenantCacheInterceptor) tenantCached() {
    return this.#answer('tenant-cached');
  }

  @Get('url-cached') @UseInterceptors(CacheInterceptor) urlCached() {
    return this.#answer('url-cached');
  }

  @Get('open') @NoTenant() @UseInterceptors(TenantCacheInterceptor) open() {
    return this.#answer('open');
  }
}

describe('TenantCacheInterceptor', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let app: INestApplication;
  let get: (path: string, tenant?: string) => Promise<unknown>;

  beforeAll(async () => {
    @Module({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          tenancy: {
            migrations: await folder({ '001_t.sql': 'CREATE TABLE {{tables.t}} (v text);' }),
            registrySchema: 'cache_http_reg',
          },
        }),
        CacheModule.register({ isGlobal: true }),
        TenantCacheModule,
      ],
      controllers: [ReportController],
    })
    class AppModule {}
    const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.listen(0, '127.0.0.1');
    const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
    get = async (path, tenant) => {
      const res = await fetch(`${url}${path}`, {
        headers: tenant === undefined ? {} : { 'x-tenant-id': tenant },
      });
      return res.json();
    };
    const tenants = app.get(TenantService);
    await tenants.create('h1');
    await tenants.create('h2');
  });
  afterAll(() => app?.close());
  beforeEach(() => (calls.length = 0));

  it("caches each tenant's response apart", async () => {
    expect(await get('/tenant-cached', 'h1')).toEqual({ tenant: 'h1' });
    expect(await get('/tenant-cached', 'h2')).toEqual({ tenant: 'h2' });
    expect(await get('/tenant-cached', 'h1')).toEqual({ tenant: 'h1' });
    expect(await get('/tenant-cached', 'h2')).toEqual({ tenant: 'h2' });
    expect(calls).toEqual(['tenant-cached:h1', 'tenant-cached:h2']);
  });

  it('where the plain CacheInterceptor serves one tenant the response of another', async () => {
    expect(await get('/url-cached', 'h1')).toEqual({ tenant: 'h1' });
    expect(await get('/url-cached', 'h2')).toEqual({ tenant: 'h1' });
  });

  it('caches nothing without a tenant', async () => {
    expect(await get('/open')).toEqual({ tenant: null });
    expect(await get('/open')).toEqual({ tenant: null });
    expect(calls).toEqual(['open:null', 'open:null']);
  });
});
