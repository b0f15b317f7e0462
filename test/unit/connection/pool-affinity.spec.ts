import pg from 'pg';
import { hasPoolInternals, installAffinity } from '../../../lib/connection/pool-affinity.js';
import { LaneRanks, rankLanes } from '../../../lib/connection/lane-ranks.js';
import { resolvePoolOptions } from '../../../lib/connection/pool-options.js';

const keys = (n: number) => Array.from({ length: n }, (_, i) => `tenant_${i}`);

describe('rendezvous ranking of lanes', () => {
  it('spreads 10,000 keys over 10 lanes within a few percent of even', () => {
    const counts = new Array<number>(10).fill(0);
    for (const key of keys(10_000)) counts[rankLanes(key, 10, 1)[0]]++;
    for (const count of counts) expect(Math.abs(count - 1_000)).toBeLessThan(80);
  });

  it('ranks the same lanes for a key every time, best first and distinct', () => {
    const ranks = new LaneRanks(10, 3);
    for (const key of keys(200)) {
      const ranked = rankLanes(key, 10, 3);
      expect(ranks.of(key)).toEqual(ranked);
      expect(ranks.of(key)).toEqual(ranked);
      expect(new Set(ranked).size).toBe(3);
      expect(rankLanes(key, 10, 10).slice(0, 3)).toEqual(ranked);
    }
  });

  it('moves only about 1/n of the keys when the pool grows from 10 to 11 lanes', () => {
    let moved = 0;
    for (const key of keys(10_000)) {
      const before = rankLanes(key, 10, 1)[0];
      const after = rankLanes(key, 11, 1)[0];
      if (before !== after) {
        moved++;
        // A key only ever moves to the new lane.
        expect(after).toBe(10);
      }
    }
    expect(moved / 10_000).toBeGreaterThan(0.07);
    expect(moved / 10_000).toBeLessThan(0.11);
  });

  it('keeps a bounded cache', () => {
    const ranks = new LaneRanks(4, 1, 8);
    for (const key of keys(100)) ranks.of(key);
    expect(ranks.of('tenant_0')).toEqual(rankLanes('tenant_0', 4, 1));
  });
});

describe('the pg-pool internals affinity relies on', () => {
  // pg-pool has no public hook for choosing which idle client serves which waiter; these pin
  // the 3.x internals wrapped in lib/connection/pool-affinity.ts, so an upgrade that changes
  // them fails here rather than silently losing affinity.
  it('are present on a pg.Pool', () => {
    const pool = new pg.Pool({ max: 2 });
    expect(hasPoolInternals(pool)).toBe(true);
    const internals = pool as unknown as Record<string, unknown>;
    expect(internals._expired).toBeInstanceOf(WeakSet);
    const source = String(internals._pulseQueue);
    // The pulse pairs the last idle client with the first waiter.
    expect(source).toContain('this._pendingQueue.shift()');
    expect(source).toContain('this._idle.pop()');
    expect(source).toContain('this.newClient(pendingItem)');
    // A new client is pushed onto _clients before it connects.
    expect(String(internals.newClient)).toMatch(/this\._clients\.push\(client\)/);
    // An expired client is closed when released.
    expect(String(internals._release)).toContain('this._expired.has(client)');
    // connect() queues a PendingItem (or hands it to newClient) synchronously.
    expect(String(internals.connect)).toContain('this._pendingQueue.push(');
  });

  it('missing, install nothing and warn once', () => {
    const bare = Object.assign(Object.create(pg.Pool.prototype) as pg.Pool, {
      options: { max: 2 },
    });
    const warnings: string[] = [];
    expect(installAffinity(bare, resolvePoolOptions(), (m) => warnings.push(m))).toBe(false);
    expect(warnings).toEqual([expect.stringContaining('pool.affinity: false')]);
    const pool = new pg.Pool({ max: 2 });
    expect(installAffinity(pool, resolvePoolOptions(), (m) => warnings.push(m))).toBe(true);
    expect(
      installAffinity(
        new pg.Pool(),
        resolvePoolOptions({ affinity: false, backendMemory: false }),
        (m) => warnings.push(m),
      ),
    ).toBe(false);
    expect(warnings).toHaveLength(1);
  });
});
