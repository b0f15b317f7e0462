import { integerOption } from '../../shared/option-values.js';
import type { MigrationFile } from '../../migrations/migration-files.js';
import type { MigrationRunner } from '../../migrations/migration-runner.js';
import type { MigrationConnection, MigrationStatus } from '../../migrations/migration-types.js';
import { MigrationSchemaMissingError } from '../../migrations/migration.errors.js';
import { migrationsDigest } from '../tenant-migrations-digest.js';
import { TenantGoneError, tenantGuard } from '../tenant-locks.js';
import type { TenantRegistry } from '../registry/tenant-registry.js';
import type { PooledTier } from '../pooled/pooled-tier.js';
import { PooledMigrationError } from '../pooled/pooled.errors.js';
import type { TenantRow } from '../registry/tenant-registry-store.js';
import type { TenantStatus } from '../tenant-state.js';
import type { TenantTier } from '../tenant-tier.js';
import {
  planWaves,
  resolveWaveOptions,
  waveSummary,
  type MigrationWaveOptions,
  type MigrationWaveSummary,
  type PlannedWave,
} from './migration-waves.js';
import type {
  MigrationRolloutState,
  MigrationRolloutStop,
  RecordedOutcome,
  TenantRolloutOutcome,
  TenantRolloutStore,
} from './tenant-rollout-store.js';
import { TenantNotFoundError } from '../tenant.errors.js';

/** Progress of `migrateAll()`, reported after each tenant. */
export interface TenantMigrationProgress {
  /** Tenants finished so far, this one included. */
  readonly done: number;
  /** Tenants this run covers. */
  readonly total: number;
  /** The tenant just finished. */
  readonly tenantId: string;
  /** `gone`: the tenant was dropped (or began dropping) while the run went on; nothing was done. */
  readonly outcome: TenantRolloutOutcome;
  /** The tenant's wave: `0` for the canary wave. */
  readonly wave: number;
}

/**
 * Options of `TenantService.migrateAll()`. The wave options (`canary`, `waveSize`,
 * `stopAfterFailures`, `retryFailed`) are described on {@link MigrationWaveOptions}.
 */
export interface MigrateAllOptions extends MigrationWaveOptions {
  /** Tenants migrated at once. Default: `tenancy.migrationConcurrency`, capped at `pool.max`. */
  concurrency?: number;
  /** Called after each tenant. */
  onProgress?: (progress: TenantMigrationProgress) => void;
  /** Only these tenant ids. Default: every active or suspended tenant. */
  tenants?: readonly string[];
}

/** What `migrateAll()` did. */
export interface TenantMigrationSummary {
  /** Tenants that had pending files, with the files applied. */
  readonly applied: {
    /** The tenant migrated. */
    readonly tenantId: string;
    /** Names of the files applied to it, in the order they ran. */
    readonly files: string[];
  }[];
  /** Tenants already up to date (known from the registry, without touching their schema). */
  readonly skipped: number;
  /** Tenants whose migration failed; their failed file was rolled back, later ones not run. */
  readonly failed: {
    /** The tenant whose migration failed. */
    readonly tenantId: string;
    /** The error's message (also stored in the registry row's `last_error`). */
    readonly error: string;
  }[];
  /**
   * Tenants found `dropping`, or dropped while the run went on: skipped, their schemas left
   * alone (a migration never creates a tenant's schema).
   */
  readonly gone: readonly string[];
  /**
   * Tenants still `provisioning` (being created elsewhere, or left by a crash: see
   * `TenantService.repair`): not migrated by this run.
   */
  readonly provisioning: readonly string[];
  /** The waves of this run, in order (the canary wave, if any, is wave `0`). */
  readonly waves: readonly MigrationWaveSummary[];
  /** Why the run stopped early (a rerun resumes with the tenants not attempted), or `null`. */
  readonly stopped: MigrationRolloutStop | null;
  /** Tenants planned but not attempted because the run stopped. */
  readonly notAttempted: readonly string[];
  /** Wall-clock time of the whole run, in milliseconds. */
  readonly durationMs: number;
  /**
   * The pooled schema's migration, run once for every pooled tenant before the schema tenants'
   * waves; `null` when `tenancy.pooled` is off, or `tenants` names no pooled tenant. Pooled
   * tenants are counted here, not in `skipped` or `failed`.
   */
  readonly pooled: PooledMigrationOutcome | null;
}

/** What `migrateAll()` did to the pooled schema (see `TenantMigrationSummary.pooled`). */
export interface PooledMigrationOutcome {
  /** The pooled schema. */
  readonly schema: string;
  /** Names of the files applied to it by this run, in the order they ran. */
  readonly files: string[];
  /** Pooled tenants (`active` or `suspended`) whose tables it holds. */
  readonly tenants: number;
  /**
   * Why its migration failed (its message is also each pooled tenant's `lastError`; its `cause`
   * the runner's error), or `null`. Schema tenants are migrated all the same.
   */
  readonly error: PooledMigrationError | null;
}

/** One row of the fleet view (`migrationStatus()`, `migrate --tenants --status`). */
export interface TenantMigrationState {
  /** The tenant id. */
  readonly tenantId: string;
  /**
   * Its tier. A `pooled` tenant's version, pending, changed and missing are the pooled schema's
   * (its tables), read from that schema's history.
   */
  readonly tier: TenantTier;
  /** Its lifecycle status in the registry. */
  readonly status: TenantStatus;
  /** Files applied as of the last migration run. */
  readonly version: number;
  /** Number of files in the folder not applied yet. */
  readonly pending: number;
  /** Applied files have been edited since (the next run fails with a checksum error). */
  readonly changed: boolean;
  /** Applied files that are no longer in the folder (deleted, or an older checkout). */
  readonly missing: number;
  /** When a migration run last succeeded for the tenant; `null` before the first. */
  readonly lastMigratedAt: Date | null;
  /** Why the last migration attempt failed, or `null` when it succeeded. */
  readonly lastError: string | null;
  /** Its wave in the latest rollout, or `null` when that rollout has not reached it. */
  readonly wave: number | null;
  /** Its outcome in the latest rollout, or `null` when not attempted yet. */
  readonly rolloutOutcome: TenantRolloutOutcome | null;
}

/**
 * Migrations across the fleet. Each tenant is migrated under its lock, and its row is re-read
 * under that lock before every step: a tenant dropped meanwhile is skipped and reported, never
 * re-created.
 */
export class TenantFleetMigrator {
  constructor(
    private readonly registry: TenantRegistry,
    private readonly runner: MigrationRunner,
    private readonly files: () => Promise<readonly MigrationFile[]>,
    /** Workers for a run: the requested number (or the default), capped at `pool.max`. */
    private readonly concurrencyFor: (requested: number | undefined) => number,
    /** Where waves and outcomes are recorded, and how its tables are ensured. */
    private readonly rollouts: { store: TenantRolloutStore; ensure(): Promise<void> },
    /** The pooled tier, when on: its schema is migrated once for all its tenants. */
    private readonly pooled?: PooledTier,
  ) {}

  async migrateAll(options: MigrateAllOptions = {}): Promise<TenantMigrationSummary> {
    const requested =
      options.concurrency === undefined
        ? undefined
        : integerOption(options.concurrency, 'migrateAll concurrency', 1);
    const waveOptions = resolveWaveOptions(options);
    const started = performance.now();
    const files = await this.files();
    const rows = await this.#rows(options.tenants);
    const current = migrationsDigest(files, files.length);
    const gone = rows.filter((r) => r.status === 'dropping').map((r) => r.id);
    const provisioning = rows.filter((r) => r.status === 'provisioning').map((r) => r.id);
    const servedAll = rows.filter((r) => r.status === 'active' || r.status === 'suspended');
    // A pooled tenant's tables are the pooled schema's, migrated once for all of them, first.
    const pooledRows = servedAll.filter((r) => r.tier === 'pooled');
    const pooled =
      this.pooled && (options.tenants === undefined || pooledRows.length > 0)
        ? await this.#migratePooled(this.pooled, pooledRows.length)
        : null;
    const served = servedAll.filter((r) => r.tier !== 'pooled');
    const stale = served.filter((r) => !isUpToDate(r, files, current));
    const skipped = served.length - stale.length;
    // A failure recorded for files the folder no longer has (the failing file was deleted, or
    // fixed elsewhere) does not hold for a tenant up to date with these files: clear it, so the
    // fleet view stops reporting it. No statement when there is none (a no-op run stays one query).
    const settled = served.filter((r) => r.last_error !== null && isUpToDate(r, files, current));
    if (settled.length > 0) await this.registry.store.clearFailures(settled.map((r) => r.id));
    const applied: { tenantId: string; files: string[] }[] = [];
    const failed: { tenantId: string; error: string }[] = [];
    let done = skipped;
    const total = served.length;
    const concurrency = Math.max(1, this.concurrencyFor(requested));
    // Nothing pending: no rollout to record, so a no-op run stays one query over the registry.
    let waves: PlannedWave<TenantRow>[] = [];
    if (stale.length > 0) {
      await this.rollouts.ensure();
      const rollout = await this.rollouts.store.begin(current, files.length);
      waves = planWaves(stale, rollout.recorded, waveOptions, rollout.lastWave + 1);
    }
    const migrateOne = async (
      row: TenantRow,
      connection: MigrationConnection,
      wave: number,
    ): Promise<{
      tenantId: string;
      outcome: TenantMigrationProgress['outcome'];
      error?: string;
    }> => {
      let outcome: TenantMigrationProgress['outcome'];
      let error: string | undefined;
      try {
        const result = await connection.migrate(row.schema_name, files, {
          createSchema: false,
          guard: tenantGuard(this.registry.table, row.id, ['active', 'suspended']),
        });
        // Files deleted from the folder stay applied: the recorded version never goes down.
        await this.registry.store.recordMigrated(
          row.id,
          files.length + result.missing.length,
          current,
        );
        if (result.applied.length > 0) {
          applied.push({ tenantId: row.id, files: result.applied.map((a) => a.name) });
          outcome = 'applied';
        } else {
          outcome = 'up-to-date';
        }
      } catch (err) {
        if (err instanceof TenantGoneError) {
          gone.push(row.id);
          outcome = 'gone';
        } else {
          error =
            err instanceof MigrationSchemaMissingError
              ? `${err.message} The registry row has no schema: drop the tenant and create it again.`
              : (err as Error).message;
          failed.push({ tenantId: row.id, error });
          outcome = 'failed';
          await this.registry.store.recordFailure(row.id, error).catch(() => undefined);
        }
      }
      options.onProgress?.({ done: ++done, total, tenantId: row.id, outcome, wave });
      return { tenantId: row.id, outcome, error };
    };
    // Each worker keeps one migration connection for all the tenants it takes, across waves: a
    // new connection per tenant would cost about as much as a small tenant's migrations.
    const connections = Array.from(
      { length: Math.min(concurrency, Math.max(0, ...waves.map((w) => w.tenants.length))) },
      () => this.runner.connection(),
    );
    const waveSummaries: MigrationWaveSummary[] = [];
    const notAttempted: string[] = [];
    let stopped: MigrationRolloutStop | undefined;
    try {
      for (const { wave, tenants } of waves) {
        if (stopped) {
          notAttempted.push(...tenants.map((t) => t.id));
          waveSummaries.push(waveSummary(wave, tenants.length, [], tenants.length));
          continue;
        }
        const outcomes: Awaited<ReturnType<typeof migrateOne>>[] = [];
        let next = 0;
        const limitReached = () =>
          waveOptions.stopAfterFailures !== undefined &&
          failed.length >= waveOptions.stopAfterFailures;
        const worker = async (connection: MigrationConnection) => {
          while (next < tenants.length && !limitReached()) {
            outcomes.push(await migrateOne(tenants[next++], connection, wave));
          }
        };
        await Promise.all(connections.slice(0, tenants.length).map(worker));
        const left = tenants.slice(next).map((t) => t.id);
        notAttempted.push(...left);
        await this.rollouts.store.record(current, wave, outcomes);
        waveSummaries.push(waveSummary(wave, tenants.length, outcomes, left.length));
        if (limitReached()) stopped = { reason: 'failure-limit', wave };
        else if (wave === 0 && outcomes.some((o) => o.outcome === 'failed')) {
          stopped = { reason: 'canary-failed', wave };
        }
      }
    } finally {
      await Promise.all(connections.map((c) => c.close()));
    }
    if (stale.length > 0) await this.rollouts.store.end(current, stopped);
    return {
      applied,
      skipped,
      failed,
      gone,
      provisioning,
      waves: waveSummaries,
      stopped: stopped ?? null,
      notAttempted,
      durationMs: Math.round(performance.now() - started),
      pooled,
    };
  }

  /** The pooled schema's migration: a failure is reported, not thrown (schema tenants go on). */
  async #migratePooled(pooled: PooledTier, tenants: number): Promise<PooledMigrationOutcome> {
    const { schema } = pooled.options;
    try {
      const result = await pooled.migrate();
      return { schema, files: result.applied.map((a) => a.name), tenants, error: null };
    } catch (err) {
      const error =
        err instanceof PooledMigrationError ? err : new PooledMigrationError(schema, err);
      return { schema, files: [], tenants, error };
    }
  }

  /** The latest rollout as the registry records it (waves, outcomes, state), or `null`. */
  rolloutStatus(): Promise<MigrationRolloutState | null> {
    return this.rollouts.store.latest();
  }

  /** The fleet view: per tenant, its version, pending count, edited files and last failure. One query. */
  async migrationStatus(tenants?: readonly string[]): Promise<TenantMigrationState[]> {
    const files = await this.files();
    const current = migrationsDigest(files, files.length);
    const rows = await this.#rows(tenants);
    const latest = await this.rollouts.store.latest();
    const recorded: Map<string, RecordedOutcome> = latest
      ? await this.rollouts.store.outcomes(latest.digest)
      : new Map<string, RecordedOutcome>();
    // Pooled tenants' tables are the pooled schema's: its history says where they stand.
    const shared =
      this.pooled && rows.some((r) => r.tier === 'pooled') ? await this.pooled.status() : null;
    return rows.map((row) => {
      if (row.tier === 'pooled' && shared) return pooledState(row, shared);
      return schemaState(row, files, current, recorded);
    });
  }

  async #rows(tenants?: readonly string[]): Promise<TenantRow[]> {
    tenants?.forEach((id) => this.registry.validate(id));
    const rows = await this.registry.store.all(tenants);
    const missing = tenants?.filter((id) => !rows.some((r) => r.id === id)) ?? [];
    if (missing.length > 0) throw new TenantNotFoundError(missing[0]);
    return rows;
  }
}

/** Whether `row` has applied exactly `files`, unedited: nothing to migrate and nothing failing. */
function isUpToDate(row: TenantRow, files: readonly MigrationFile[], digest: string): boolean {
  return row.migrated_version === files.length && row.migrations_digest === digest;
}

/** A schema tenant's row of the fleet view: what the registry recorded for its own schema. */
function schemaState(
  row: TenantRow,
  files: readonly MigrationFile[],
  current: string,
  recorded: Map<string, RecordedOutcome>,
): TenantMigrationState {
  return {
    tenantId: row.id,
    tier: row.tier,
    status: row.status,
    version: row.migrated_version,
    pending: Math.max(0, files.length - row.migrated_version),
    missing: Math.max(0, row.migrated_version - files.length),
    changed:
      row.migrated_version > 0 &&
      row.migrated_version <= files.length &&
      row.migrations_digest !== migrationsDigest(files, row.migrated_version),
    lastMigratedAt: row.last_migrated_at,
    // A failure is not reported for a tenant up to date with the files (see migrateAll).
    lastError: isUpToDate(row, files, current) ? null : row.last_error,
    wave: recorded.get(row.id)?.wave ?? null,
    rolloutOutcome: recorded.get(row.id)?.outcome ?? null,
  };
}

/** A pooled tenant's row of the fleet view: the pooled schema's history (its tables' home). */
function pooledState(row: TenantRow, shared: MigrationStatus): TenantMigrationState {
  return {
    tenantId: row.id,
    tier: row.tier,
    status: row.status,
    version: shared.applied.length,
    pending: shared.pending.length,
    missing: shared.missing.length,
    changed: shared.changed.length > 0,
    lastMigratedAt: row.last_migrated_at,
    // The pooled schema's last failure, cleared by its next successful migration.
    lastError: row.last_error,
    // Rollout waves are the schema tenants': the pooled schema is migrated before them.
    wave: null,
    rolloutOutcome: null,
  };
}
