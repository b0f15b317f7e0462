import type pg from 'pg';
import { LaneRanks } from './lane-ranks.js';
import { schemaBound, type ResolvedPoolOptions } from './pool-options.js';

/**
 * Tenant affinity and memory-aware recycling, installed on a `pg.Pool` instance.
 *
 * pg-pool pairs the most recently released idle client with the oldest waiter, so over time
 * every connection serves every schema: each backend caches every schema's catalog (PostgreSQL
 * never evicts it) and a connection's managed statements cycle through its LRU. Here each
 * schema ranks the pool's `max` lanes by rendezvous hashing, a new connection takes the lane
 * its first caller prefers, and the pairing of idle connections with waiters favours a
 * schema's preferred lanes, without ever leaving a waiter queued while a connection is idle.
 *
 * pg-pool has no hook for this, so three of its 3.x internals are wrapped on the instance:
 * `_pulseQueue` (the pairing: it pops `_idle`'s last item and shifts `_pendingQueue`'s first,
 * so those arrays are reordered before it runs), `newClient` (the lane of a new connection)
 * and `_acquireClient` (the schemas a connection has served, and recycling through pg-pool's
 * `_expired` set, which closes a connection when it is released).
 * `test/unit/connection/pool-affinity.spec.ts` pins them.
 */

/** Figures of tenant affinity, from `DatabaseMonitor.getAffinityStats()`. */
export interface PoolAffinityStats {
  /** Lanes a schema's preference ranges over: the pool's `max`. */
  readonly lanes: number;
  /** How many lanes each schema prefers (`pool.affinity.preferredConnections`). */
  readonly preferredConnections: number;
  /** Checkouts made for a schema (the ones affinity can steer). */
  readonly checkouts: number;
  /** Of those, served by a connection on one of the schema's preferred lanes. */
  readonly preferred: number;
  /** Served by another connection that had already served the schema. */
  readonly warm: number;
  /** Served by any other connection, so that the caller did not wait (work stealing). */
  readonly stolen: number;
  /**
   * Released connections given out of first-come order: to a waiter that prefers them, or else
   * to one whose schema they have served.
   */
  readonly handoffs: number;
  /** Connections closed for having served more schemas than `schemaBound`. */
  readonly recycled: number;
  /** Most distinct schemas a connection serves before it is replaced; `null` without a bound. */
  readonly schemaBound: number | null;
  /**
   * The distinct schemas each open connection has served so far (without `schemaBound`,
   * counted up to 65,536).
   */
  readonly schemasPerConnection: number[];
}

/** A checkout's callback, as `pg.Pool.connect` takes it. */
export type ConnectCallback = (
  err: Error | undefined,
  client: pg.PoolClient | undefined,
  done: (release?: unknown) => void,
) => void;

/** The most schemas remembered per connection when `backendMemory` is `false`. */
const UNBOUNDED_TRACKING = 65_536;

const STATE = Symbol('nestjs-pg-tenancy:affinity');
const TAG = Symbol('nestjs-pg-tenancy:lane');
const KEY = Symbol('nestjs-pg-tenancy:key');
const LANES = Symbol('nestjs-pg-tenancy:lanes');
const PASSED = Symbol('nestjs-pg-tenancy:passed');

/** What pg-pool queues for a caller, with the schema it is for. */
interface PendingItem {
  callback: ConnectCallback;
  timedOut?: boolean;
  [KEY]?: string;
  [LANES]?: readonly number[];
  /** How many times a later waiter was served before this one. */
  [PASSED]?: number;
}

interface ClientTag {
  readonly lane: number;
  readonly served: Set<string>;
  recycling: boolean;
  /** The current checkout is for a schema that does not prefer this connection's lane. */
  away: boolean;
}

type TaggedClient = pg.PoolClient & { [TAG]?: ClientTag };

interface IdleItem {
  client: TaggedClient;
}

/** pg-pool 3.x internals this module wraps. */
interface PoolInternals {
  options: { max?: number };
  _clients: TaggedClient[];
  _idle: IdleItem[];
  _pendingQueue: PendingItem[];
  _expired: WeakSet<object>;
  ending: boolean;
  ended: boolean;
  _pulseQueue: (this: AffinityPool) => unknown;
  newClient: (this: AffinityPool, pendingItem: PendingItem) => unknown;
  _acquireClient: (
    this: AffinityPool,
    client: TaggedClient,
    pendingItem: PendingItem,
    idleListener: unknown,
    isNew: boolean,
  ) => unknown;
}

interface AffinityState {
  /** Set only while `connectFor` runs `pool.connect()`: the key of the item it creates. */
  pendingKey: string | undefined;
  readonly ranks: LaneRanks | undefined;
  readonly bound: number | undefined;
  readonly counts: {
    checkouts: number;
    preferred: number;
    warm: number;
    stolen: number;
    handoffs: number;
    recycled: number;
  };
}

type AffinityPool = pg.Pool & PoolInternals & { [STATE]?: AffinityState };

/** Has `pool` the pg-pool 3.x internals wrapped here? */
export function hasPoolInternals(pool: pg.Pool): boolean {
  const p = pool as Partial<PoolInternals>;
  return (
    typeof p._pulseQueue === 'function' &&
    typeof p.newClient === 'function' &&
    typeof p._acquireClient === 'function' &&
    Array.isArray(p._clients) &&
    Array.isArray(p._idle) &&
    Array.isArray(p._pendingQueue) &&
    p._expired instanceof WeakSet
  );
}

/**
 * Installs affinity and recycling on `pool`, as `options` (resolved pool options) say.
 * Returns `false`, changing nothing, when the pool lacks the internals (a pg-pool other than
 * 3.x) or both are off.
 */
export function installAffinity(
  pool: pg.Pool,
  options: Pick<ResolvedPoolOptions, 'affinity' | 'backendMemory'>,
  warn: (message: string) => void,
): boolean {
  const bound = schemaBound(options.backendMemory);
  if (options.affinity === false && bound === undefined) return false;
  if (!hasPoolInternals(pool)) {
    warn(
      'This pg-pool version lacks the internals tenant affinity and backendMemory recycling ' +
        'rely on (pg-pool 3.x); the pool runs without them. Pin pg-pool 3, or set ' +
        'pool.affinity: false and pool.backendMemory: false to silence this.',
    );
    return false;
  }
  const target = pool as AffinityPool;
  if (target[STATE] !== undefined) return true;
  const lanes = target.options.max ?? 10;
  const state: AffinityState = {
    pendingKey: undefined,
    ranks:
      options.affinity === false
        ? undefined
        : new LaneRanks(lanes, Math.min(options.affinity.preferredConnections, lanes)),
    bound,
    counts: { checkouts: 0, preferred: 0, warm: 0, stolen: 0, handoffs: 0, recycled: 0 },
  };
  target[STATE] = state;

  const pulseQueue = target._pulseQueue;
  const newClient = target.newClient;
  const acquireClient = target._acquireClient;
  if (state.ranks !== undefined) {
    const window = 4 * lanes;
    target._pulseQueue = function (this: AffinityPool) {
      if (!this.ending && !this.ended) pair(this, state, window, 2 * lanes);
      return pulseQueue.call(this);
    };
  }
  target.newClient = function (this: AffinityPool, pendingItem: PendingItem) {
    if (state.pendingKey !== undefined && pendingItem[KEY] === undefined) {
      tagItem(state, pendingItem, state.pendingKey);
    }
    const result = newClient.call(this, pendingItem);
    const client = this._clients[this._clients.length - 1];
    if (client !== undefined && client[TAG] === undefined) {
      client[TAG] = {
        lane: state.ranks === undefined ? -1 : freeLane(this._clients, pendingItem, lanes),
        served: new Set(),
        recycling: false,
        away: false,
      };
    }
    return result;
  };
  target._acquireClient = function (
    this: AffinityPool,
    client: TaggedClient,
    pendingItem: PendingItem,
    idleListener: unknown,
    isNew: boolean,
  ) {
    const key = pendingItem[KEY];
    const tag = client[TAG];
    if (tag !== undefined) {
      tag.away = false;
      if (key !== undefined) record(this, state, tag, client, key, pendingItem);
    }
    return acquireClient.call(this, client, pendingItem, idleListener, isNew);
  };
  return true;
}

/**
 * `pool.connect(callback)` for work in schema `key`: with affinity installed, the checkout
 * prefers the schema's lanes and counts toward its connection's schema bound. Without a key,
 * or on a pool without affinity, it is exactly `pool.connect(callback)`.
 */
export function connectFor(
  pool: pg.Pool,
  key: string | undefined,
  callback: ConnectCallback,
): void {
  const state = (pool as AffinityPool)[STATE];
  if (key === undefined || state === undefined) {
    pool.connect(callback);
    return;
  }
  const queue = (pool as AffinityPool)._pendingQueue;
  const queued = queue.length;
  // pg-pool creates the caller's pending item synchronously: it either queues it (tagged
  // below) or hands it to `newClient` (tagged there, from `pendingKey`).
  state.pendingKey = key;
  try {
    pool.connect(callback);
  } finally {
    state.pendingKey = undefined;
  }
  if (queue.length > queued) tagItem(state, queue[queue.length - 1], key);
}

/**
 * `true` while `client` is checked out, with affinity on, for a schema whose preferred
 * connections it is not (a stolen or warm checkout). The statement cache prepares such a
 * visitor's statements only once it comes back often, so that visitors do not evict the
 * statements of the connection's own tenants.
 */
export function isAway(client: pg.ClientBase): boolean {
  return (client as TaggedClient)[TAG]?.away === true;
}

/** `connectFor` as a promise. */
export function connectForAsync(pool: pg.Pool, key: string | undefined): Promise<pg.PoolClient> {
  if (key === undefined || (pool as AffinityPool)[STATE] === undefined) return pool.connect();
  return new Promise((resolve, reject) =>
    connectFor(pool, key, (err, client) =>
      client ? resolve(client) : reject(err ?? new Error('The pool gave no client')),
    ),
  );
}

/** The pool's affinity figures; `undefined` when affinity is not installed or off. */
export function affinityStats(pool: pg.Pool): PoolAffinityStats | undefined {
  const target = pool as AffinityPool;
  const state = target[STATE];
  if (state?.ranks === undefined) return undefined;
  return {
    lanes: state.ranks.lanes,
    preferredConnections: state.ranks.preferred,
    ...state.counts,
    schemaBound: state.bound ?? null,
    schemasPerConnection: target._clients.map((c) => c[TAG]?.served.size ?? 0),
  };
}

function tagItem(state: AffinityState, item: PendingItem, key: string): void {
  item[KEY] = key;
  if (state.ranks !== undefined) item[LANES] = state.ranks.of(key);
}

/** Counts the checkout, adds `key` to what the client has served, and recycles past the bound. */
function record(
  pool: AffinityPool,
  state: AffinityState,
  tag: ClientTag,
  client: TaggedClient,
  key: string,
  pendingItem: PendingItem,
): void {
  const { counts } = state;
  const known = tag.served.has(key);
  if (state.ranks !== undefined) {
    counts.checkouts++;
    if (pendingItem[LANES]?.includes(tag.lane)) counts.preferred++;
    else {
      tag.away = true;
      if (known) counts.warm++;
      else counts.stolen++;
    }
  }
  // Without a bound, stop remembering at some point: the set lives in the application's heap.
  if (known || (state.bound === undefined && tag.served.size >= UNBOUNDED_TRACKING)) return;
  tag.served.add(key);
  if (state.bound !== undefined && tag.served.size > state.bound && !tag.recycling) {
    // pg-pool closes an expired client when it is released, and opens another on demand.
    tag.recycling = true;
    pool._expired.add(client);
    counts.recycled++;
  }
}

/** The lane of a new connection: the caller's best free preferred lane, else the lowest free. */
function freeLane(clients: TaggedClient[], pendingItem: PendingItem, lanes: number): number {
  const used = new Set<number>();
  // pg-pool drops a client that failed to connect without `_remove`: its lane is free again.
  for (const c of clients) if (c[TAG] !== undefined) used.add(c[TAG].lane);
  for (const lane of pendingItem[LANES] ?? []) if (!used.has(lane)) return lane;
  for (let lane = 0; lane < lanes; lane++) if (!used.has(lane)) return lane;
  return -1;
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
function pair(pool: AffinityPool, state: AffinityState, window: number, maxPassed: number): void {
  const idle = pool._idle;
  const queue = pool._pendingQueue;
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
  state.counts.handoffs++;
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
