// The pairing of idle connections with waiters under tenant affinity (pool-affinity.ts installs
// it on pg-pool's `_pulseQueue`): which idle connection a caller takes, and which waiter a
// released connection goes to.
import type pg from 'pg';

/** A checkout's callback, as `pg.Pool.connect` takes it. */
export type ConnectCallback = (
  err: Error | undefined,
  client: pg.PoolClient | undefined,
  done: (release?: unknown) => void,
) => void;

export const TAG = Symbol('nestjs-pg-tenancy:lane');
export const KEY = Symbol('nestjs-pg-tenancy:key');
export const LANES = Symbol('nestjs-pg-tenancy:lanes');
export const PASSED = Symbol('nestjs-pg-tenancy:passed');

/** What pg-pool queues for a caller, with the schema it is for. */
export interface PendingItem {
  callback: ConnectCallback;
  timedOut?: boolean;
  [KEY]?: string;
  [LANES]?: readonly number[];
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

/** The idle item on the first of `lanes` that has one, else the last that has served `key`. */
function pickIdle(idle: IdleItem[], lanes: readonly number[], key: string): number {
  for (const lane of lanes) {
    for (let i = 0; i < idle.length; i++) if (idle[i].client[TAG]?.lane === lane) return i;
  }
  for (let i = idle.length - 1; i >= 0; i--) if (idle[i].client[TAG]?.served.has(key)) return i;
  return -1;
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
    // its schema, else pg-pool's pick (the most recently released).
    const head = queue[0];
    const key = head[KEY];
    if (key === undefined) return;
    const pick = pickIdle(idle, head[LANES] ?? [], key);
    if (pick >= 0 && pick !== idle.length - 1) idle.push(idle.splice(pick, 1)[0]);
    return;
  }
  if (queue.length === 1) return;
  // One connection, several waiters (a release under load): it goes to the first waiter in the
  // window that prefers its lane; failing that, to the first whose schema it has served (its
  // catalog is cached there, and perhaps its statements), so that a connection does not gather
  // schemas from the queue's head. Never by passing over a waiter already passed over
  // `maxPassed` times, which is then served in order: nobody starves.
  const client = idle[0].client;
  const lane = client[TAG]?.lane;
  if (lane === undefined || lane < 0) return;
  const end = Math.min(queue.length, window);
  let chosen = waiterFor(queue, end, maxPassed, (waiter) => waiter[LANES]?.includes(lane) === true);
  if (chosen < 0) {
    const served = client[TAG]!.served;
    chosen = waiterFor(queue, end, maxPassed, (waiter) => served.has(waiter[KEY]!));
  }
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
