import type pg from 'pg';
import { SchemaDb, TenantContext, type PoolOptions } from '../../../lib/index.js';
import { createPool, endPool } from '../../../lib/connection/create-pool.js';
import {
  affinityStats,
  connectForAsync,
  type PoolAffinityStats,
} from '../../../lib/connection/pool-affinity.js';
import { rankLanes } from '../../../lib/connection/lane-ranks.js';
import { createDatabaseRuntime } from '../../../lib/module/database-runtime.js';
import { useTestDatabase } from '../../support/database.js';
import { hold } from '../../support/hold.js';

/** Schema names whose first-choice lane (of `lanes`) is `lane`. */
function schemasOnLane(lane: number, lanes: number, count: number, prefix = 't'): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) {
    if (rankLanes(`${prefix}_${i}`, lanes, 1)[0] === lane) out.push(`${prefix}_${i}`);
  }
  return out;
}

const pid = async (db: SchemaDb) => Number(await db.fetchValue('SELECT pg_backend_pid()'));
const backendPid = (client: pg.PoolClient) =>
  (client as unknown as { processID: number }).processID;

describe('tenant affinity and memory-aware recycling on the shared pool', () => {
  const database = useTestDatabase();
  const pools: pg.Pool[] = [];

  function open(pool: PoolOptions): pg.Pool {
    const created = createPool({ connection: database.current.url, pool });
    pools.push(created);
    return created;
  }
  afterEach(async () => {
    // Bounded: a failing test may leave a connection checked out.
    await Promise.all(pools.splice(0).map((p) => endPool(p, 2_000)));
  });

  /** Opens `count` connections at once (keyless, so on lanes 0…count-1) and returns them. */
  async function fill(pool: pg.Pool, count: number): Promise<pg.PoolClient[]> {
    return Promise.all(Array.from({ length: count }, () => pool.connect()));
  }

  const stats = (pool: pg.Pool) => affinityStats(pool) as PoolAffinityStats;

  // Catches: checkouts ignoring the schema's preferred lane (pg's most recently released
  // connection instead), and withSchema() managers carrying their parent's schema as the key.
  it("sends a schema's sequential queries to its preferred connection, other lanes' schemas to others", async () => {
    const lanes = 4;
    const pool = open({ max: lanes });
    for (const client of await fill(pool, lanes)) client.release();
    const base = SchemaDb.create(pool, 'base');
    const pidOfLane = new Map<number, number>();
    for (let lane = 0; lane < lanes; lane++) {
      const [first, second] = schemasOnLane(lane, lanes, 2);
      for (const db of [SchemaDb.create(pool, first), base.withSchema(second)]) {
        for (let i = 0; i < 5; i++) {
          const seen = await pid(db);
          expect(seen).toBe(pidOfLane.get(lane) ?? seen);
          pidOfLane.set(lane, seen);
        }
      }
    }
    expect(new Set(pidOfLane.values()).size).toBe(lanes);
    expect(stats(pool)).toMatchObject({
      lanes,
      preferredConnections: 1,
      checkouts: lanes * 10,
      preferred: lanes * 10,
      warm: 0,
      stolen: 0,
    });
    expect(stats(pool).schemasPerConnection).toEqual([2, 2, 2, 2]);
  });

  // Catches: strict affinity, where a query waits for its busy preferred connection while
  // another sits idle (it would fail here with PoolAcquireTimeoutError).
  it('steals an idle connection while the preferred one is busy, and returns home after', async () => {
    const pool = open({ max: 3, acquireTimeoutMs: 2_000 });
    for (const client of await fill(pool, 3)) client.release();
    const db = SchemaDb.create(pool, 'tenant_a');
    const home = await pid(db);
    let heldPid: number | undefined;
    const transaction = await hold((wait) =>
      db.transaction(async (tx) => {
        heldPid = await pid(tx);
        await wait();
      }),
    );
    let during: number;
    try {
      expect(heldPid).toBe(home);
      during = await pid(db);
    } finally {
      await transaction.release();
    }
    expect(during).not.toBe(home);
    expect(stats(pool)).toMatchObject({ stolen: 1 });
    expect(await pid(db)).toBe(home);
    // The connection that stole it had served it: a second steal counts as warm.
    const again = await hold((wait) => db.transaction(() => wait()));
    expect(await pid(db)).toBe(during);
    await again.release();
    expect(stats(pool)).toMatchObject({ checkouts: 6, preferred: 4, stolen: 1, warm: 1 });
  });

  // Catches: no hand-off to a waiter that prefers the released connection (window of one),
  // and an unbounded pass-over that starves a waiter for another schema or for none.
  it.each([
    ['a waiter for another schema', 'other'],
    ['a waiter without a schema', undefined],
  ])(
    'under saturation hands a released connection to a waiter preferring it, passing %s over at most max times',
    async (_label, otherKind) => {
      const pool = open({ max: 2 });
      const [lane0, lane1] = await fill(pool, 2);
      const [mine] = schemasOnLane(0, 2, 1);
      const [other] = schemasOnLane(1, 2, 1);
      const waiting = new Map<string, Promise<[string, pg.PoolClient]>>();
      const waiter = (name: string, key: string | undefined) =>
        waiting.set(
          name,
          connectForAsync(pool, key).then((client) => [name, client]),
        );
      /** The next waiter served, and its connection. */
      const next = async () => {
        const [name, client] = await Promise.race(waiting.values());
        waiting.delete(name);
        return { name, client };
      };
      waiter('first', otherKind && other);
      for (const name of ['a1', 'a2', 'a3', 'a4']) waiter(name, mine);
      const served: string[] = [];
      lane0.release();
      const c1 = await next();
      expect(c1.name).toBe('a1');
      expect(backendPid(c1.client)).toBe(backendPid(lane0));
      c1.client.release();
      const c2 = await next();
      expect(c2.name).toBe('a2');
      // `first` has now been passed over max (2) times: it is served next, in order.
      c2.client.release();
      const c3 = await next();
      expect(c3.name).toBe('first');
      served.push(c1.name, c2.name, c3.name);
      c3.client.release();
      const c4 = await next();
      c4.client.release();
      lane1.release();
      const c5 = await next();
      c5.client.release();
      served.push(c4.name, c5.name);
      expect(served).toEqual(['a1', 'a2', 'first', 'a3', 'a4']);
      expect(stats(pool).handoffs).toBe(2);
    },
  );

  // Catches: an off-by-one in the bound, and recycling when backendMemory is false.
  it('replaces a connection once it has served more schemas than the budget allows', async () => {
    // (3 MiB - 2 MiB) / 300 KiB: three schemas a connection.
    const pool = open({ max: 1, backendMemory: { budgetMiB: 3, perSchemaKiB: 300 } });
    const first = await pid(SchemaDb.create(pool, 's1'));
    for (const schema of ['s2', 's3', 's1', 's2', 's3']) {
      expect(await pid(SchemaDb.create(pool, schema))).toBe(first);
    }
    expect(stats(pool)).toMatchObject({ schemaBound: 3, recycled: 0, schemasPerConnection: [3] });
    // The fourth is served, then the connection is closed on release.
    expect(await pid(SchemaDb.create(pool, 's4'))).toBe(first);
    expect(stats(pool).recycled).toBe(1);
    const next = await pid(SchemaDb.create(pool, 's1'));
    expect(next).not.toBe(first);
    expect(stats(pool).schemasPerConnection).toEqual([1]);

    const unbounded = open({ max: 1, backendMemory: false });
    const only = await pid(SchemaDb.create(unbounded, 'u0'));
    for (let i = 1; i < 12; i++) expect(await pid(SchemaDb.create(unbounded, `u${i}`))).toBe(only);
    expect(stats(unbounded)).toMatchObject({ schemaBound: null, recycled: 0 });
  });

  // Catches: affinity applied although switched off (pg-pool's LIFO idle pick, FIFO waiters).
  it("with affinity: false, keeps pg-pool's order", async () => {
    const [onLane0] = schemasOnLane(0, 3, 1);
    const [onLane1] = schemasOnLane(1, 3, 1);
    const picks: Record<string, { idle: boolean; waiter: string }> = {};
    for (const affinity of [true, false]) {
      const pool = open({ max: 3, affinity });
      const clients = await fill(pool, 3);
      for (const client of clients) client.release();
      // Idle: [lane 0, lane 1, lane 2]; pg-pool takes the last released.
      const taken = await connectForAsync(pool, onLane0);
      const idle = backendPid(taken) === backendPid(clients[0]);
      const held = [taken, ...(await fill(pool, 2))];
      const served: string[] = [];
      const w1 = connectForAsync(pool, onLane1).then((c) => (served.push('w1'), c));
      const w2 = connectForAsync(pool, onLane0).then((c) => (served.push('w2'), c));
      held[0].release();
      const [winner] = await Promise.race([w1, w2]).then(() => served);
      picks[String(affinity)] = { idle, waiter: winner };
      for (const client of held.slice(1)) client.release();
      for (const client of await Promise.all([w1, w2])) client.release();
      if (!affinity) expect(affinityStats(pool)).toBeUndefined();
    }
    expect(picks).toEqual({
      true: { idle: true, waiter: 'w2' },
      false: { idle: false, waiter: 'w1' },
    });
  });

  it('is reported by DatabaseMonitor.getAffinityStats(), undefined when off', async () => {
    const context = new TenantContext();
    const on = await createDatabaseRuntime({ connection: database.current.url }, context);
    const off = await createDatabaseRuntime(
      { connection: database.current.url, pool: { affinity: false } },
      context,
    );
    pools.push(on.pool, off.pool);
    await SchemaDb.create(on, 'tenant_x').fetchValue('SELECT 1');
    expect(on.monitor.getAffinityStats()).toEqual({
      lanes: 10,
      preferredConnections: 1,
      checkouts: 1,
      preferred: 1,
      warm: 0,
      stolen: 0,
      handoffs: 0,
      recycled: 0,
      schemaBound: 6_348,
      schemasPerConnection: [1],
    });
    expect(off.monitor.getAffinityStats()).toBeUndefined();
  });
});
