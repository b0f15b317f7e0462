// The pairing of idle connections with waiters under tenant affinity (pool-affinity.ts installs
// it on pg-pool's `_pulseQueue`): which connection a caller takes, and which waiter a released
// connection goes to.
import type pg from 'pg';
import type { LaneOrder } from './lane-ranks.js';

/** A checkout's callback, as `pg.Pool.connect` takes it. */
export type ConnectCallback = (
  err: Error | undefined,
  client: pg.PoolClient | undefined,
  done: (release?: unknown) => void,
) => void;

export const TAG = Symbol('nestjs-pg-tenancy:lane');
export const KEY = Symbol('nestjs-pg-tenancy:key');
export const ORDER = Symbol('nestjs-pg-tenancy:order');
export const PASSED = Symbol('nestjs-pg-tenancy:passed');

/** What pg-pool queues for a caller, with the schema it is for. */
export interface PendingItem {
  callback: ConnectCallback;
  timedOut?: boolean;
  [KEY]?: string;
  [ORDER]?: LaneOrder;
  /** How many times a later waiter was served before this one. */
  [PASSED]?: number;
}

export interface ClientTag {
  readonly lane: number;
  readonly served: Set<string>;
  recycling: boolean;
  /** The current checkout is for a schema that does not prefer this connection's lane. */
  away: boolean;
}

export type TaggedClient = pg.PoolClient & { [TAG]?: ClientTag };

export interface IdleItem {
  client: TaggedClient;
}

/**
 * The idle item `key` is best served by: on one of its preferred lanes, else one that has
 * served it (its catalog is cached there), else any; among equals, the one on the lane it ranks
 * highest, so that the connections a schema visits beyond its own are few and always the same.
 */
function pickIdle(idle: IdleItem[], order: LaneOrder, key: string): number {
  const preferred = order.preferred.length;
  let best = -1;
  let bestScore = Infinity;
  for (let i = 0; i < idle.length; i++) {
    const tag = idle[i].client[TAG];
    if (tag === undefined || tag.lane < 0) continue;
    const place = order.place[tag.lane];
    const tier = place < preferred ? 0 : tag.served.has(key) ? 1 : 2;
    const score = tier * 65_536 + place;
    if (score < bestScore) {
      best = i;
      bestScore = score;
    }
  }
  return best;
}

/**
 * Reorders `_idle` and `_pendingQueue` so that pg-pool's pulse (last idle, first waiter) pairs
 * them as affinity wants.
 */
export function pair(
  idle: IdleItem[],
  queue: PendingItem[],
  counts: { handoffs: number },
  window: number,
  maxPassed: number,
): void {
  if (queue.length === 0 || idle.length === 0) return;
  if (idle.length > 1) {
    // Connections to spare: the first waiter takes one of its lanes, else one that has served
    // its schema, else the one its schema ranks highest.
    const head = queue[0];
    const key = head[KEY];
    if (key === undefined) return;
    const order = head[ORDER];
    if (order === undefined) return;
    const pick = pickIdle(idle, order, key);
    if (pick >= 0 && pick !== idle.length - 1) idle.push(idle.splice(pick, 1)[0]);
    return;
  }
  if (queue.length === 1) return;
  // One connection, several waiters (a release under load): it goes to the first waiter in the
  // window that prefers its lane; failing that, to the first whose schema it has served (its
  // catalog is cached there, and perhaps its statements); failing that, to the one whose schema
  // ranks its lane highest, so that a connection gathers the schemas of its neighbours in the
  // ranking, not those at the queue's head. Never by passing over a waiter already passed over
  // `maxPassed` times, which is then served in order: nobody starves.
  const client = idle[0].client;
  const lane = client[TAG]?.lane;
  if (lane === undefined || lane < 0) return;
  const end = Math.min(queue.length, window);
  let chosen = waiterFor(queue, end, maxPassed, (w) => w[ORDER]!.preferred.includes(lane));
  if (chosen < 0) {
    const served = client[TAG]!.served;
    chosen = waiterFor(queue, end, maxPassed, (waiter) => served.has(waiter[KEY]!));
  }
  if (chosen < 0) chosen = closestWaiter(queue, end, maxPassed, lane);
  if (chosen <= 0) return;
  for (let i = 0; i < chosen; i++) queue[i][PASSED] = (queue[i][PASSED] ?? 0) + 1;
  queue.unshift(queue.splice(chosen, 1)[0]);
  counts.handoffs++;
}

/**
 * The index of the first of `queue`'s first `end` waiters that `wanted` accepts, without passing
 * over one already passed over `maxPassed` times; `-1` when there is none.
 */
function waiterFor(
  queue: PendingItem[],
  end: number,
  maxPassed: number,
  wanted: (waiter: PendingItem) => boolean,
): number {
  for (let i = 0; i < end; i++) {
    const waiter = queue[i];
    if (waiter[KEY] !== undefined && wanted(waiter)) return i;
    if ((waiter[PASSED] ?? 0) >= maxPassed) return -1;
  }
  return -1;
}

/**
 * The index of the waiter among `queue`'s first `end` whose schema ranks `lane` highest (the
 * first of equals), without passing over one already passed over `maxPassed` times.
 */
function closestWaiter(queue: PendingItem[], end: number, maxPassed: number, lane: number): number {
  let best = -1;
  let bestPlace = Infinity;
  for (let i = 0; i < end; i++) {
    const order = queue[i][ORDER];
    if (order !== undefined && order.place[lane] < bestPlace) {
      best = i;
      bestPlace = order.place[lane];
    }
    if ((queue[i][PASSED] ?? 0) >= maxPassed) break;
  }
  return best;
}
