// `pool.affinity.waitForPreferredMs`: bounded waits that keep a tenant's queries on its own
// connection (pool-affinity.ts installs them). Two kinds, one per side of a checkout:
// - a caller whose preferred connection is busy while another is idle waits for its own;
// - under saturation, a released connection that no queued caller prefers is held for a caller
//   that does, instead of going to one that does not.
// Both wait at most `waitMs`, one per connection, and then do what pg-pool would have done.
import {
  KEY,
  LANES,
  PASSED,
  TAG,
  waiterFor,
  type ConnectCallback,
  type IdleItem,
  type PendingItem,
  type TaggedClient,
} from './affinity-pairing.js';
import type { LaneRanks } from './lane-ranks.js';

/** The parts of a pg-pool 3.x pool the waits read and change. */
export interface WaitsPool {
  readonly _idle: IdleItem[];
  readonly _pendingQueue: PendingItem[];
  readonly _clients: TaggedClient[];
  readonly ending: boolean;
}

/** What the waits count, in `PoolAffinityStats`. */
export interface WaitCounts {
  waited: number;
  waitTimeouts: number;
}

interface WaitingCheckout {
  readonly key: string;
  readonly callback: ConnectCallback;
  readonly timer: ReturnType<typeof setTimeout>;
}

interface HeldConnection {
  readonly item: IdleItem;
  readonly timer: ReturnType<typeof setTimeout>;
}

/** The waits of one pool. */
export class PreferredWaits {
  /** Per lane, the one caller waiting for that lane's busy connection. */
  readonly #waiting = new Map<number, WaitingCheckout>();
  /** Per lane, its released connection, held for a caller that prefers it. */
  readonly #held = new Map<number, HeldConnection>();
  /** A connection whose hold just ran out: not held again in the pairing that follows. */
  #expired: IdleItem | undefined;

  constructor(
    private readonly pool: WaitsPool,
    private readonly ranks: LaneRanks,
    private readonly counts: WaitCounts,
    private readonly options: {
      readonly waitMs: number;
      readonly window: number;
      readonly maxPassed: number;
      /**
       * Checks out for `key` now: the caller takes an idle connection or joins pg-pool's queue,
       * where with `inOrder` it is not passed over (nor held against) any more.
       */
      readonly checkout: (key: string, callback: ConnectCallback, inOrder: boolean) => void;
      /** pg-pool's pairing, with affinity's reordering first. */
      readonly pulse: () => void;
    },
  ) {}

  /**
   * A checkout for `key`: it takes a connection held for one of its lanes, or waits for its
   * busy preferred connection, or checks out now.
   */
  arrive(key: string, callback: ConnectCallback): void {
    const lanes = this.ranks.of(key);
    if (this.#held.size > 0) {
      for (const lane of lanes) {
        const held = this.#held.get(lane);
        if (held === undefined) continue;
        this.#release(lane, held);
        this.options.checkout(key, callback, true);
        return;
      }
    }
    const { _idle: idle, _pendingQueue: queue } = this.pool;
    // Under saturation it queues, and a released connection may be held for it; with its own
    // connection idle, it takes that one.
    if (queue.length > 0 || idle.length === 0 || this.pool.ending || this.#ownIdle(lanes)) {
      this.options.checkout(key, callback, false);
      return;
    }
    // Connections idle, its own busy: it waits for its own, or, if it cannot, takes another now.
    if (!this.#wait(key, lanes, callback)) this.options.checkout(key, callback, true);
  }

  /**
   * Before pg-pool pairs: callers waiting for an idle connection's lane join the queue, and a
   * lone released connection that no queued caller prefers is held for its lane. `true` when
   * it was held (pg-pool then has nothing to pair).
   */
  beforePairing(): boolean {
    const { _idle: idle, _pendingQueue: queue } = this.pool;
    if (this.#waiting.size > 0) {
      for (const item of idle) {
        const lane = item.client[TAG]?.lane;
        const waiting = lane === undefined ? undefined : this.#waiting.get(lane);
        if (waiting === undefined) continue;
        clearTimeout(waiting.timer);
        this.#waiting.delete(lane!);
        this.options.checkout(waiting.key, waiting.callback, true);
      }
    }
    if (idle.length !== 1 || queue.length === 0 || this.pool.ending) return false;
    const item = idle[0];
    const lane = item.client[TAG]?.lane;
    if (item === this.#expired || lane === undefined || lane < 0 || this.#held.has(lane))
      return false;
    const end = Math.min(queue.length, this.options.window);
    const { maxPassed } = this.options;
    // Somebody takes it now: a caller that prefers it, or one passed over enough already.
    if (waiterFor(queue, end, maxPassed, (w) => w[LANES]!.includes(lane)) >= 0) return false;
    for (let i = 0; i < end; i++) {
      if (queue[i][KEY] === undefined || (queue[i][PASSED] ?? 0) >= maxPassed) return false;
    }
    // Holding it passes over every caller in the window once: nobody waits on holds forever.
    for (let i = 0; i < end; i++) queue[i][PASSED] = (queue[i][PASSED] ?? 0) + 1;
    idle.pop();
    const timer = setTimeout(() => {
      if (this.#held.get(lane)?.timer !== timer) return;
      this.counts.waitTimeouts++;
      this.#release(lane, this.#held.get(lane)!);
      this.#expired = item;
      try {
        this.options.pulse();
      } finally {
        this.#expired = undefined;
      }
    }, this.options.waitMs);
    timer.unref?.();
    this.#held.set(lane, { item, timer });
    this.counts.waited++;
    return true;
  }

  /** The pool is ending: held connections go back to idle, for pg-pool to close. */
  releaseAll(): void {
    for (const [lane, held] of this.#held) this.#release(lane, held);
  }

  #release(lane: number, held: HeldConnection): void {
    clearTimeout(held.timer);
    this.#held.delete(lane);
    // pg-pool may have closed it meanwhile (its idle timeout, an error): then it is gone.
    if (this.pool._clients.includes(held.item.client)) this.pool._idle.push(held.item);
  }

  #ownIdle(lanes: readonly number[]): boolean {
    return this.pool._idle.some((item) => lanes.includes(item.client[TAG]?.lane ?? -1));
  }

  /**
   * Waits for a busy connection on one of `lanes` that no other caller waits for; `false`
   * when there is none.
   */
  #wait(key: string, lanes: readonly number[], callback: ConnectCallback): boolean {
    const busy = this.pool._clients.find((c) => {
      const tag = c[TAG];
      return tag !== undefined && !tag.recycling && lanes.includes(tag.lane);
    });
    const lane = busy?.[TAG]?.lane;
    if (lane === undefined || this.#waiting.has(lane)) return false;
    const timer = setTimeout(() => {
      if (this.#waiting.get(lane)?.timer !== timer) return;
      this.#waiting.delete(lane);
      this.counts.waitTimeouts++;
      this.options.checkout(key, callback, true);
    }, this.options.waitMs);
    timer.unref?.();
    this.#waiting.set(lane, { key, callback, timer });
    this.counts.waited++;
    return true;
  }
}
