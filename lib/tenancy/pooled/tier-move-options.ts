// The options and results of TenantService.moveTier().
import type { TenantTier } from '../tenant-tier.js';
import type { TierMoveStep } from './tier-move-sql.js';

/** Options of `TenantService.moveTier()`. */
export interface MoveTierOptions {
  /**
   * How long the old copy is kept (and refuses writes) after the flip, so that every instance
   * routes the tenant to its new home before it goes. Never less than the registry's
   * `maxStalenessMs`. Default: `maxStalenessMs`.
   */
  graceMs?: number;
  /**
   * Longest wait of one attempt at the write pause for the tenant's in-flight writes to finish;
   * the tenant's new writes wait meanwhile. An attempt that times out catches up and tries again
   * (5 attempts). Default: `1000`.
   */
  pauseTimeoutMs?: number;
  /** Called after each step (awaited): for progress reports. */
  onProgress?: (progress: TierMoveProgress) => void | Promise<void>;
}

/**
 * A step of a move reached: `prepared` (recorded; a new schema built), `capturing` (changes
 * logged), `copying` (the snapshot's rows are written, not committed yet: called in the copy's
 * transaction), `copied` (the snapshot is in the new home), `caught-up` (one round of logged changes
 * applied), `pausing` (writes held, final catch-up done, about to flip: in the flip's
 * transaction), `flipped` (served from the new home), `cleaned` (old copy and capture removed).
 */
export interface TierMoveProgress {
  /** The tenant moved. */
  readonly tenantId: string;
  /** The tier it leaves. */
  readonly from: TenantTier;
  /** The tier it goes to. */
  readonly to: TenantTier;
  /** The step reached (see above). */
  readonly step: TierMoveStep | 'copying' | 'caught-up' | 'pausing' | 'cleaned';
  /** Rows copied by the snapshot (`copied`), or changes applied by the round (`caught-up`). */
  readonly rows?: number;
}

/** What `TenantService.moveTier()` did. */
export interface TierMoveResult {
  /** The tenant moved. */
  readonly tenantId: string;
  /** The tier it was in. */
  readonly from: TenantTier;
  /** The tier it is in now. */
  readonly to: TenantTier;
  /** `false` when the tenant already was in tier `to` (nothing done). */
  readonly moved: boolean;
  /** Rows copied by the snapshot. */
  readonly copiedRows: number;
  /** Logged changes applied after the snapshot, the final catch-up included. */
  readonly replayedChanges: number;
  /** How long the tenant's writes were held, in milliseconds (the flip's transaction). */
  readonly pauseMs: number;
  /** Milliseconds per phase. */
  readonly phases: Readonly<
    Record<'prepare' | 'copy' | 'catchUp' | 'pause' | 'grace' | 'cleanup', number>
  >;
}
