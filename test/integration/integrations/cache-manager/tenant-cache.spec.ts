// TenantCache: @nestjs/cache-manager's cache with keys in the current tenant's namespace. Two
// tenants' equal keys never meet; outside a tenant context every operation is a typed error;
// the global namespace is explicit and apart from every tenant's.
import { CACHE_MANAGER, CacheModule } from '@nestjs/cache-manager';
import { Test, type TestingModule } from '@nestjs/testing';
import type { Cache } from 'cache-manager';
import { DatabaseModule, TenantContextMissingError, TenantService } from '../../../../lib/index.js';
import {
  TenantCache,
  TenantCacheModule,
} from '../../../../lib/integrations/cache-manager/index.js';
import { useTestDatabase } from '../../../support/database.js';
import { useMigrationFolders } from '../../../support/migrations.js';

describe('TenantCache', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let app: TestingModule;
  let tenants: TenantService;
  let cache: TenantCache;
  let raw: Cache;

  beforeAll(async () => {
    app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          tenancy: {
            migrations: await folder({ '001_t.sql': 'CREATE TABLE {{tables.t}} (v text);' }),
            registrySchema: 'cache_reg',
            interceptor: false,
          },
        }),
        CacheModule.register({ isGlobal: true }),
        TenantCacheModule,
      ],
    }).compile();
    await app.init();
    tenants = app.get(TenantService);
    await tenants.create('c1');
    await tenants.create('c2');
    cache = app.get(TenantCache);
    raw = app.get<Cache>(CACHE_MANAGER);
  });
  afterAll(() => app?.close());

  it("keeps two tenants' equal keys apart", async () => {
    await tenants.run('c1', () => cache.set('plan', 'pro'));
    await tenants.run('c2', () => cache.set('plan', 'free'));
    expect(await tenants.run('c1', () => cache.get('plan'))).toBe('pro');
    expect(await tenants.run('c2', () => cache.get('plan'))).toBe('free');
    expect(await raw.get('tenant:c1:plan')).toBe('pro');
    expect(await raw.get('plan')).toBeUndefined();

    await tenants.run('c1', () =>
      cache.mset([
        { key: 'a', value: 1 },
        { key: 'b', value: 2 },
      ]),
    );
    expect(await tenants.run('c2', () => cache.mget(['a', 'b']))).toEqual([undefined, undefined]);
    expect(await tenants.run('c1', () => cache.mget(['a', 'b']))).toEqual([1, 2]);
    await tenants.run('c2', () => cache.del('plan'));
    expect(await tenants.run('c1', () => cache.get('plan'))).toBe('pro');
    await tenants.run('c1', () => cache.mdel(['a', 'b']));
    expect(await raw.get('tenant:c1:a')).toBeUndefined();
  });

  it('computes a wrapped value once per tenant, never sharing it', async () => {
    const computed: string[] = [];
    const load = (id: string) =>
      tenants.run(id, () =>
        cache.wrap('settings', () => {
          computed.push(id);
          return `${id}-settings`;
        }),
      );
    expect(await load('c1')).toBe('c1-settings');
    expect(await load('c2')).toBe('c2-settings');
    expect(await load('c1')).toBe('c1-settings');
    expect(computed).toEqual(['c1', 'c2']);
    expect(await tenants.run('c1', () => cache.ttl('settings'))).toBeUndefined();
  });

  it('fails closed outside a tenant context, with a typed error, touching nothing', async () => {
    await expect(cache.get('plan')).rejects.toBeInstanceOf(TenantContextMissingError);
    await expect(cache.set('plan', 'x')).rejects.toBeInstanceOf(TenantContextMissingError);
    await expect(cache.mget(['plan'])).rejects.toBeInstanceOf(TenantContextMissingError);
    await expect(cache.wrap('k', () => 1)).rejects.toBeInstanceOf(TenantContextMissingError);
    await expect(cache.del('plan')).rejects.toBeInstanceOf(TenantContextMissingError);
    expect(() => cache.keyOf('plan')).toThrow(TenantContextMissingError);
    expect(await raw.get('plan')).toBeUndefined();
    expect(await raw.get('x')).toBeUndefined();
  });

  it('offers the global namespace explicitly, apart from every tenant', async () => {
    await cache.global.set('plan', 'shared');
    expect(await cache.global.get('plan')).toBe('shared');
    expect(await raw.get('global:plan')).toBe('shared');
    expect(await tenants.run('c1', () => cache.get('plan'))).toBe('pro');
    expect(await tenants.run('c1', () => cache.global.get('plan'))).toBe('shared');
  });
});
