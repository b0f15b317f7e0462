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

  // Catches: a visiting tenant's statement prepared at the plain threshold on a connection it
  // does not prefer (visitors then evict the connection's own tenants' statements), and the
  // away mark left on a connection after it goes back to serving its own tenant.
  it("prepares a visiting tenant's statement only once it comes back often", async () => {
    const pool = open({ max: 2, acquireTimeoutMs: 2_000 });
    for (const client of await fill(pool, 2)) client.release();
    const [visitor] = schemasOnLane(0, 2, 1, 'visitor');
    const db = SchemaDb.create(pool, visitor, {
      preparedStatements: { enabled: true, prepareThreshold: 2 },
    });
    const home = await pid(db);
    const prepared = () => db.statementStats!.prepared;
    const lookup = () => db.fetchValue('SELECT pg_backend_pid() + $1::int', [0]);
    const held = await hold((wait) => db.transaction(() => wait()));
    try {
      // Away from home: 2 uses (the plain threshold) prepare nothing; the 8th (4 × 2) does.
      for (let use = 1; use <= 7; use++) {
        expect(Number(await lookup())).not.toBe(home);
        expect(prepared()).toBe(0);
      }
      await lookup();
      expect(prepared()).toBe(1);
    } finally {
      await held.release();
    }
    // At home, the plain threshold.
    await lookup();
    expect(prepared()).toBe(1);
    expect(Number(await lookup())).toBe(home);
    expect(prepared()).toBe(2);
    // The connection it visited serves its own tenant at the plain threshold again.
    const [native] = schemasOnLane(1, 2, 1, 'native');
    const own = db.withSchema(native);
    const ownLookup = () => own.fetchValue('SELECT pg_backend_pid() + $1::int + 0', [0]);
    expect(Number(await ownLookup())).not.toBe(home);
    expect(prepared()).toBe(2);
    await ownLookup();
    expect(prepared()).toBe(3);
  });

  // Catches: no hand-off to a waiter that prefers the released connection (window of one),
  // and an unbounded pass-over that starves a waiter for another schema or for none.
  it.each([
    ['a waiter for another schema', 'other'],
    ['a waiter without a schema', undefined],
  ])(
    'under saturation hands a released connection to a waiter preferring it, passing %s over at most 2 × max times',
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
      const mineNames = ['a1', 'a2', 'a3', 'a4', 'a5', 'a6'];
      for (const name of mineNames) waiter(name, mine);
      const served: string[] = [];
      let release = lane0;
      // `first` is passed over 2 × max (4) times, each time for a waiter preferring lane 0 ...
      for (const name of mineNames.slice(0, 4)) {
        release.release();
        const c = await next();
        expect(c.name).toBe(name);
        expect(backendPid(c.client)).toBe(backendPid(lane0));
        served.push(c.name);
        release = c.client;
      }
      // ... and is then served next, in order.
      release.release();
      const c5 = await next();
      expect(c5.name).toBe('first');
      c5.client.release();
      const c6 = await next();
      c6.client.release();
      lane1.release();
      const c7 = await next();
      c7.client.release();
      served.push(c5.name, c6.name, c7.name);
      expect(served).toEqual(['a1', 'a2', 'a3', 'a4', 'first', 'a5', 'a6']);
      expect(stats(pool).handoffs).toBe(4);
    },
  );

  // Catches: a released connection that no waiter prefers going to the queue's head although a
  // waiter whose schema it has already served is queued (the connection then gathers schemas).
  it('under saturation, failing a preferring waiter, hands a connection to a waiter whose schema it served', async () => {
    const pool = open({ max: 2 });
    const [lane0, lane1] = await fill(pool, 2);
    const [known] = schemasOnLane(1, 2, 1, 'known');
    const [cold] = schemasOnLane(1, 2, 1, 'cold');
    // lane 0 serves `known` once, while lane 1 is busy: a steal.
    lane0.release();
    const stolen = await connectForAsync(pool, known);
    expect(backendPid(stolen)).toBe(backendPid(lane0));
    const waiting = new Map<string, Promise<[string, pg.PoolClient]>>();
    const waiter = (name: string, key: string) =>
      waiting.set(
        name,
        connectForAsync(pool, key).then((client) => [name, client]),
      );
    waiter('cold', cold);
    waiter('known', known);
    stolen.release();
    const [first, client] = await Promise.race(waiting.values());
    expect(first).toBe('known');
    expect(backendPid(client)).toBe(backendPid(lane0));
    waiting.delete(first);
    client.release();
    const [second, other] = await Promise.race(waiting.values());
    expect(second).toBe('cold');
    other.release();
    lane1.release();
    expect(stats(pool)).toMatchObject({ handoffs: 1, stolen: 2, warm: 1 });
  });

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
