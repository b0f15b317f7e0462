// Rendezvous hashing of schema names over a pool's lanes, for tenant affinity (pool-affinity.ts).

/**
 * Each key's preferred lanes by rendezvous (highest-random-weight) hashing: a key scores every
 * lane with a hash of the pair and prefers the highest. Keys spread evenly, one key always
 * ranks the same lanes, and a change of `max` moves only about 1/max of the keys' first choice.
 */
export class LaneRanks {
  readonly #cache = new Map<string, readonly number[]>();
  readonly #limit: number;

  constructor(
    readonly lanes: number,
    readonly preferred: number,
    limit = 16_384,
  ) {
    this.#limit = limit;
  }

  /** The `preferred` best lanes for `key`, best first. */
  of(key: string): readonly number[] {
    let ranked = this.#cache.get(key);
    if (ranked === undefined) {
      ranked = rankLanes(key, this.lanes, this.preferred);
      if (this.#cache.size >= this.#limit) this.#cache.delete(this.#cache.keys().next().value!);
      this.#cache.set(key, ranked);
    }
    return ranked;
  }
}

/** The `count` highest-scoring lanes of `lanes` for `key`, best first. */
export function rankLanes(key: string, lanes: number, count: number): number[] {
  const hash = fnv1a(key);
  const best: number[] = [];
  const scores: number[] = [];
  for (let lane = 0; lane < lanes; lane++) {
    const score = laneScore(hash, lane);
    let at = best.length;
    while (at > 0 && scores[at - 1] < score) at--;
    if (at >= count) continue;
    best.splice(at, 0, lane);
    scores.splice(at, 0, score);
    if (best.length > count) {
      best.pop();
      scores.pop();
    }
  }
  return best;
}

/** FNV-1a, 32 bits, over UTF-16 code units. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** The key's hash mixed with the lane through murmur3's finaliser. */
function laneScore(hash: number, lane: number): number {
  let x = hash ^ Math.imul(lane + 1, 0x9e3779b1);
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}
