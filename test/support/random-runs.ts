// What the seeded randomized specs share: a seedable generator and the answer a lookup gave.
import type { TenantStatus } from '../../lib/index.js';

/** mulberry32: small, seedable, good enough to pick operations. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What a lookup of a tenant answered: served, refused as suspended, or unknown. */
export type Answer = 'active' | 'suspended' | 'unknown';

/** The answer a registry row in `status` (or no row) gives. */
export const answerOf = (status: TenantStatus | undefined): Answer =>
  status === 'active' ? 'active' : status === 'suspended' ? 'suspended' : 'unknown';
