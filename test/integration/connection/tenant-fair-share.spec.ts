import pg from 'pg';
import {
  InvalidOptionsError,
  SchemaDb,
  TenantContext,
  TenantShareTimeoutError,
} from '../../../lib/index.js';
import { createDatabaseRuntime } from '../../../lib/module/database-runtime.js';
import { TenantFairShare } from '../../../lib/connection/tenant-fair-share.js';
import { resolveTenancyOptions } from '../../../lib/tenancy/tenancy-options.js';
import { adminPool, useTestDatabase } from '../../support/database.js';
import { holdTransaction } from '../../support/hold.js';

const POOL_MAX = 4;
const SHARE = 2;
const NOISY_WORK = 6;

describe('per-tenant fair share of the pool', () => {
  const database = useTestDatabase();
  let pool: pg.Pool;
  const context = new TenantContext();

  beforeEach(() => {
    pool = adminPool(database.current.url, POOL_MAX);
  });
  afterEach(() => pool.end());

  function managers(fairShare?: TenantFairShare): { noisy: SchemaDb; quiet: SchemaDb } {
    const env = { pool, ...(fairShare ? { fairShare } : {}) };
    return { noisy: SchemaDb.create(env, null), quiet: SchemaDb.create(env, null) };
  }

  function share(acquireTimeoutMs = 10_000): TenantFairShare {
    return new TenantFairShare({
      maxPerTenant: SHARE,
      acquireTimeoutMs,
      poolMax: POOL_MAX,
      tenantOf: () => context.current?.tenantId,
    });
  }

  const asTenant = <T>(tenantId: string, db: SchemaDb, fn: () => Promise<T>): Promise<T> =>
    context.run({ tenantId, db }, fn);

  /**
   * The noisy tenant opens NOISY_WORK transactions that each hold their connection until
   * released; resolves once the first `holding` of them have their connection.
   */
  async function saturate(noisy: SchemaDb, holding: number) {
    const holds: Promise<{ release(): Promise<unknown> }>[] = [];
    for (let i = 0; i < NOISY_WORK; i++) {
      holds.push(asTenant('noisy', noisy, () => holdTransaction(noisy)));
    }
    const first = await Promise.race([Promise.all(holds.slice(0, holding)), never()]);
    return { holds, first };
  }

  function never(): Promise<never> {
    return new Promise(() => undefined);
  }

  it('a noisy tenant at its cap holds only its share, and another tenant is served meanwhile', async () => {
    const fairShare = share();
    const { noisy, quiet } = managers(fairShare);
    const order: string[] = [];
    const { holds, first } = await saturate(noisy, SHARE);
    expect(pool.totalCount).toBe(SHARE);
    expect(fairShare.stats).toEqual({ tenants: 1, active: SHARE, waiting: NOISY_WORK - SHARE });
    // The quiet tenant's query completes while every noisy transaction is still open.
    const value = await asTenant('quiet', quiet, () => quiet.fetchValue<number>('SELECT 7'));
    order.push('quiet done');
    expect(value).toBe(7);
    expect(fairShare.stats.waiting).toBe(NOISY_WORK - SHARE);
    // Releasing the holders lets the queued noisy work through, SHARE at a time.
    for (const hold of first) await hold.release();
    for (const hold of holds.slice(SHARE)) await (await hold).release();
    order.push('noisy done');
    expect(order).toEqual(['quiet done', 'noisy done']);
    expect(fairShare.stats).toEqual({ tenants: 0, active: 0, waiting: 0 });
    expect(pool.idleCount).toBe(pool.totalCount);
  });

  it('without the cap, the noisy tenant takes the whole pool and the other tenant waits behind it', async () => {
    const { noisy, quiet } = managers();
    const order: string[] = [];
    const { holds, first } = await saturate(noisy, POOL_MAX);
    expect(pool.totalCount).toBe(POOL_MAX);
    const quietQuery = asTenant('quiet', quiet, () => quiet.fetchValue<number>('SELECT 7')).then(
      () => order.push('quiet done'),
    );
    // Queued in the pool behind the noisy tenant's two waiting transactions.
    expect(pool.waitingCount).toBe(NOISY_WORK - POOL_MAX + 1);
    for (const hold of first) {
      order.push('noisy released');
      await hold.release();
    }
    for (const hold of holds.slice(POOL_MAX)) await (await hold).release();
    await quietQuery;
    expect(order.indexOf('quiet done')).toBeGreaterThan(0);
  });

  it('work outside a tenant context is not capped', async () => {
    const fairShare = share();
    const { noisy } = managers(fairShare);
    const holds = await Promise.all([1, 2, 3].map(() => holdTransaction(noisy)));
    expect(pool.totalCount).toBe(3);
    expect(fairShare.stats.active).toBe(0);
    for (const hold of holds) await hold.release();
  });

  it('a tenant that waits past acquireTimeoutMs in its queue gets TenantShareTimeoutError', async () => {
    const fairShare = share(50);
    const { noisy } = managers(fairShare);
    const holds = await Promise.all(
      [1, 2].map(() => asTenant('noisy', noisy, () => holdTransaction(noisy))),
    );
    const err = await asTenant('noisy', noisy, () => noisy.fetchValue('SELECT 1')).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TenantShareTimeoutError);
    expect(err).toMatchObject({ tenantId: 'noisy', maxPerTenant: SHARE, timeoutMs: 50 });
    expect((err as Error).message).toContain('tenancy.maxConnectionsPerTenant');
    expect(fairShare.stats.waiting).toBe(0);
    for (const hold of holds) await hold.release();
    // The slots came back: the tenant is served again.
    expect(await asTenant('noisy', noisy, () => noisy.fetchValue('SELECT 1'))).toBe(1);
  });

  it('streams count against the share too, until they end', async () => {
    const fairShare = share();
    const { noisy } = managers(fairShare);
    await asTenant('noisy', noisy, async () => {
      const first = noisy.stream('SELECT generate_series(1, 100)', [], { batchSize: 1 });
      const second = noisy.stream('SELECT generate_series(1, 100)', [], { batchSize: 1 });
      await first.next();
      await second.next();
      expect(fairShare.stats.active).toBe(SHARE);
      await first.return();
      expect(fairShare.stats.active).toBe(1);
      await second.return();
    });
    expect(fairShare.stats).toEqual({ tenants: 0, active: 0, waiting: 0 });
  });

  it('tenancy.maxConnectionsPerTenant must be a positive integer', () => {
    expect(resolveTenancyOptions({}).maxConnectionsPerTenant).toBeUndefined();
    expect(
      resolveTenancyOptions({ maxConnectionsPerTenant: '3' as never }).maxConnectionsPerTenant,
    ).toBe(3);
    expect(() => resolveTenancyOptions({ maxConnectionsPerTenant: 0 })).toThrow(
      InvalidOptionsError,
    );
    expect(() => resolveTenancyOptions({ maxConnectionsPerTenant: 1.5 })).toThrow(
      /tenancy.maxConnectionsPerTenant must be a positive integer/,
    );
  });

  it('the module defaults the share to half of pool.max (at least 2), and turns it off at pool.max', async () => {
    const withTenancy = await createDatabaseRuntime(
      { connection: database.current.url, pool: { max: 7 } },
      context,
      { tenantShare: { maxConnectionsPerTenant: undefined } },
    );
    const off = await createDatabaseRuntime(
      { connection: database.current.url, pool: { max: 7 } },
      context,
      { tenantShare: { maxConnectionsPerTenant: 7 } },
    );
    const small = await createDatabaseRuntime(
      { connection: database.current.url, pool: { max: 2 } },
      context,
      { tenantShare: { maxConnectionsPerTenant: undefined } },
    );
    const noTenancy = await createDatabaseRuntime(
      { connection: database.current.url },
      context,
      {},
    );
    try {
      const fairShare = withTenancy.fairShare as TenantFairShare;
      expect(fairShare).toBeInstanceOf(TenantFairShare);
      const db = SchemaDb.create(withTenancy, null);
      const holds = await Promise.all(
        [1, 2, 3, 4].map(() => asTenant('t', db, () => holdTransaction(db))),
      );
      expect(fairShare.stats).toEqual({ tenants: 1, active: 4, waiting: 0 });
      const fifth = asTenant('t', db, () => db.fetchValue('SELECT 5'));
      expect(fairShare.stats.waiting).toBe(1);
      for (const hold of holds) await hold.release();
      expect(await fifth).toBe(5);
      expect(off.fairShare).toBeUndefined();
      expect(small.fairShare).toBeUndefined(); // at least 2, and 2 is the whole pool
      expect(noTenancy.fairShare).toBeUndefined();
    } finally {
      await Promise.all([withTenancy, off, small, noTenancy].map((rt) => rt.pool.end()));
    }
  });
});
