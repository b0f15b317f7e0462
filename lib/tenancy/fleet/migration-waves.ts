// The waves of a fleet migration: how the tenants needing it are split (a canary wave first,
// then waves of waveSize), and what each wave did.
import { integerOption } from '../../shared/option-values.js';
import type { RecordedOutcome, TenantRolloutOutcome } from './tenant-rollout-store.js';

/** Options of `migrateAll()` that shape a fleet migration into waves. */
export interface MigrationWaveOptions {
  /**
   * Tenants migrated first, as wave 0. If any of them fails, the fleet migration stops before wave 1
   * (the canary wave itself finishes). Ids not needing the migration are ignored. Default: none.
   */
  canary?: readonly string[];
  /** Tenants per wave after the canary wave. Default: every remaining tenant in one wave. */
  waveSize?: number;
  /**
   * Stop starting new tenants once this many have failed in this run (tenants already running
   * finish). The rest are left for a rerun, which resumes the rollout there. Default: never stop.
   */
  stopAfterFailures?: number;
  /**
   * Migrate only the tenants whose last attempt at these exact files failed (as recorded in the
   * registry), e.g. after fixing what made them fail. Default: `false`.
   */
  retryFailed?: boolean;
}

/** One wave of a fleet migration, as `migrateAll()` reports it. */
export interface MigrationWaveSummary {
  /** `0` is the canary wave; later waves count up across reruns of the same rollout. */
  readonly wave: number;
  /** Tenants planned for the wave. */
  readonly tenants: number;
  /** Tenants that had files applied. */
  readonly applied: number;
  /** Tenants found up to date under their lock. */
  readonly upToDate: number;
  /** Tenants whose migration failed. */
  readonly failed: number;
  /** Tenants dropped meanwhile. */
  readonly gone: number;
  /** Tenants of the wave not attempted, because the run stopped. */
  readonly notAttempted: number;
}

/** A planned wave: its number and tenant ids, in order. */
export interface PlannedWave<T> {
  readonly wave: number;
  readonly tenants: readonly T[];
}

/** Validates the wave options; returns them with numbers checked. */
export function resolveWaveOptions(options: MigrationWaveOptions): MigrationWaveOptions {
  return {
    canary: options.canary,
    waveSize:
      options.waveSize === undefined
        ? undefined
        : integerOption(options.waveSize, 'migrateAll waveSize', 1),
    stopAfterFailures:
      options.stopAfterFailures === undefined
        ? undefined
        : integerOption(options.stopAfterFailures, 'migrateAll stopAfterFailures', 1),
    retryFailed: options.retryFailed ?? false,
  };
}

/**
 * Splits the tenants needing migration into waves: the canary tenants as wave 0, then the rest
 * in `waveSize` chunks numbered from `firstWave`. Tenants that failed before in this rollout go
 * last (a rerun first resumes where it stopped); with `retryFailed`, only they are planned.
 */
export function planWaves<T extends { id: string }>(
  stale: readonly T[],
  recorded: ReadonlyMap<string, RecordedOutcome>,
  options: MigrationWaveOptions,
  firstWave: number,
): PlannedWave<T>[] {
  const failedBefore = (t: T) => recorded.get(t.id)?.outcome === 'failed';
  const candidates = options.retryFailed
    ? stale.filter(failedBefore)
    : [...stale.filter((t) => !failedBefore(t)), ...stale.filter(failedBefore)];
  const canaryIds = new Set(options.canary ?? []);
  const canary = candidates.filter((t) => canaryIds.has(t.id));
  const rest = candidates.filter((t) => !canaryIds.has(t.id));
  const waves: PlannedWave<T>[] = [];
  if (canary.length > 0) waves.push({ wave: 0, tenants: canary });
  const size = options.waveSize ?? Math.max(1, rest.length);
  for (let i = 0, n = firstWave; i < rest.length; i += size, n++) {
    waves.push({ wave: n, tenants: rest.slice(i, i + size) });
  }
  return waves;
}

/** The counts of one wave of a fleet migration from its tenants' outcomes. */
export function waveSummary(
  wave: number,
  tenants: number,
  outcomes: readonly { outcome: TenantRolloutOutcome }[],
  notAttempted: number,
): MigrationWaveSummary {
  const count = (o: TenantRolloutOutcome) => outcomes.filter((x) => x.outcome === o).length;
  return {
    wave,
    tenants,
    applied: count('applied'),
    upToDate: count('up-to-date'),
    failed: count('failed'),
    gone: count('gone'),
    notAttempted,
  };
}
