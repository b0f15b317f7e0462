// The rollout: the registry's record of one set of migration files migrated over the fleet,
// across the runs (fleet migrations) it took: each tenant's wave and outcome, and how it ended.
import type pg from 'pg';
import { qualifiedName, quoteIdentifier } from '../../shared/identifiers.js';
import type { SessionTracker } from '../../connection/sessions.js';
import { ensureOnce } from '../tenant-locks.js';

/** What became of one tenant in a fleet migration, as its rollout records it. */
export type TenantRolloutOutcome = 'applied' | 'up-to-date' | 'failed' | 'gone';

/** Why a fleet migration stopped early (recorded in its rollout). */
export interface MigrationRolloutStop {
  /** `canary-failed`: a canary tenant failed; `failure-limit`: `stopAfterFailures` was reached. */
  readonly reason: 'canary-failed' | 'failure-limit';
  /** The wave in which it stopped. */
  readonly wave: number;
}

/** A rollout of one set of migration files over the fleet, as the registry records it. */
export interface MigrationRolloutState {
  /** Digest of the files rolled out (see the registry's `migrations_digest`). */
  readonly digest: string;
  /** Number of files rolled out. */
  readonly files: number;
  /** `running` (or interrupted), `stopped` (canary or failure limit: a rerun resumes), `finished`. */
  readonly state: 'running' | 'stopped' | 'finished';
  /** Why the last run stopped, when it did. */
  readonly stopReason: MigrationRolloutStop['reason'] | null;
  /** The highest wave started so far. */
  readonly lastWave: number;
  /** When the first run of this rollout began. */
  readonly startedAt: Date;
  /** When a run last recorded progress. */
  readonly updatedAt: Date;
  /** Per wave: tenants recorded with each outcome. */
  readonly waves: readonly {
    /** The wave (`0`: canary). */
    readonly wave: number;
    /** Tenants recorded `applied`. */
    readonly applied: number;
    /** Tenants recorded `up-to-date`. */
    readonly upToDate: number;
    /** Tenants whose last attempt failed. */
    readonly failed: number;
    /** Tenants found dropped. */
    readonly gone: number;
  }[];
}

/** A recorded outcome of one tenant in the current rollout. */
export interface RecordedOutcome {
  readonly wave: number;
  readonly outcome: TenantRolloutOutcome;
  readonly error: string | null;
}

// Bumped whenever the DDL below changes; current tables are left alone (one read).
const ROLLOUT_MARKER = 'nestjs-pg-tenancy rollout v1';

/**
 * The rollout record in the registry schema: one row per set of files rolled out
 * (`tenant_rollouts`) and each tenant's wave and outcome in it (`tenant_rollout_outcomes`), so a
 * rerun resumes where a stopped or interrupted run left off and the fleet view can show waves.
 * Created, or upgraded in place, under an advisory lock, like the registry table. Only the
 * latest rollout's outcomes are kept.
 */
export class TenantRolloutStore {
  readonly #pool: pg.Pool;
  readonly #schema: string;

  constructor(pool: pg.Pool, registrySchema: string) {
    this.#pool = pool;
    this.#schema = registrySchema;
  }

  get #rollouts(): string {
    return qualifiedName(this.#schema, 'tenant_rollouts');
  }

  get #outcomes(): string {
    return qualifiedName(this.#schema, 'tenant_rollout_outcomes');
  }

  /** Creates or upgrades the tables; one read when they are current. */
  async ensure(connection: pg.ClientConfig, tracker?: SessionTracker): Promise<void> {
    await ensureOnce(
      this.#pool,
      { connection, tracker },
      `rollout:${this.#schema}`,
      (db) => this.#isCurrent(db),
      async (client) => {
        await client.query(`
        CREATE SCHEMA IF NOT EXISTS ${quoteIdentifier(this.#schema)};
        CREATE TABLE IF NOT EXISTS ${this.#rollouts} (
          digest text PRIMARY KEY,
          files integer NOT NULL,
          state text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'stopped', 'finished')),
          stop_reason text,
          last_wave integer NOT NULL DEFAULT 0,
          started_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE IF NOT EXISTS ${this.#outcomes} (
          digest text NOT NULL,
          tenant_id text NOT NULL,
          wave integer NOT NULL,
          outcome text NOT NULL,
          error text,
          attempts integer NOT NULL DEFAULT 1,
          updated_at timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (digest, tenant_id)
        );
        COMMENT ON TABLE ${this.#rollouts} IS '${ROLLOUT_MARKER}';`);
      },
    );
  }

  async #isCurrent(db: pg.Pool | pg.ClientBase): Promise<boolean> {
    const { rows } = await db.query<{ marker: string | null }>(
      `SELECT obj_description(to_regclass($1), 'pg_class') AS marker`,
      [this.#rollouts],
    );
    return rows[0]?.marker === ROLLOUT_MARKER;
  }

  /**
   * Starts (or resumes) the rollout of `digest`: its row is created or marked running again, the
   * outcomes of older rollouts are removed, and what was recorded for this one is returned.
   */
  async begin(
    digest: string,
    files: number,
  ): Promise<{ lastWave: number; resumed: boolean; recorded: Map<string, RecordedOutcome> }> {
    const { rows } = await this.#pool.query<{ last_wave: number; inserted: boolean }>(
      `INSERT INTO ${this.#rollouts} (digest, files) VALUES ($1, $2)
       ON CONFLICT (digest) DO UPDATE SET state = 'running', stop_reason = NULL, updated_at = now()
       RETURNING last_wave, (xmax = 0) AS inserted`,
      [digest, files],
    );
    await this.#pool.query(`DELETE FROM ${this.#rollouts} WHERE digest <> $1`, [digest]);
    await this.#pool.query(`DELETE FROM ${this.#outcomes} WHERE digest <> $1`, [digest]);
    return {
      lastWave: rows[0].last_wave,
      resumed: !rows[0].inserted,
      recorded: await this.outcomes(digest),
    };
  }

  /** Records the outcomes of one wave (one statement) and the wave reached. */
  async record(
    digest: string,
    wave: number,
    outcomes: readonly { tenantId: string; outcome: TenantRolloutOutcome; error?: string }[],
  ): Promise<void> {
    await this.#pool.query(
      `WITH o AS (
         INSERT INTO ${this.#outcomes} (digest, tenant_id, wave, outcome, error)
         SELECT $1, t, $2, o, e FROM unnest($3::text[], $4::text[], $5::text[]) AS u(t, o, e)
         ON CONFLICT (digest, tenant_id) DO UPDATE
           SET wave = EXCLUDED.wave, outcome = EXCLUDED.outcome, error = EXCLUDED.error,
               attempts = ${this.#outcomes}.attempts + 1, updated_at = now()
         RETURNING 1)
       UPDATE ${this.#rollouts} SET last_wave = GREATEST(last_wave, $2), updated_at = now()
        WHERE digest = $1`,
      [
        digest,
        wave,
        outcomes.map((o) => o.tenantId),
        outcomes.map((o) => o.outcome),
        outcomes.map((o) => o.error ?? null),
      ],
    );
  }

  /** Marks the rollout stopped (a rerun resumes) or finished. */
  async end(digest: string, stop: MigrationRolloutStop | undefined): Promise<void> {
    await this.#pool.query(
      `UPDATE ${this.#rollouts} SET state = $2, stop_reason = $3, updated_at = now() WHERE digest = $1`,
      [digest, stop ? 'stopped' : 'finished', stop?.reason ?? null],
    );
  }

  /** Each tenant's recorded wave and outcome in the rollout of `digest`. */
  async outcomes(digest: string): Promise<Map<string, RecordedOutcome>> {
    const { rows } = await this.#pool.query<{
      tenant_id: string;
      wave: number;
      outcome: TenantRolloutOutcome;
      error: string | null;
    }>(`SELECT tenant_id, wave, outcome, error FROM ${this.#outcomes} WHERE digest = $1`, [digest]);
    return new Map(
      rows.map((r) => [r.tenant_id, { wave: r.wave, outcome: r.outcome, error: r.error }]),
    );
  }

  /**
   * The latest rollout with per-wave counts, or `null` (none yet, or no tables: this reads only,
   * for the read-only fleet view).
   */
  async latest(): Promise<MigrationRolloutState | null> {
    const exists = await this.#pool.query<{ found: string | null }>(
      'SELECT to_regclass($1)::text AS found',
      [this.#rollouts],
    );
    if (exists.rows[0]?.found == null) return null;
    const { rows } = await this.#pool.query<{
      digest: string;
      files: number;
      state: MigrationRolloutState['state'];
      stop_reason: MigrationRolloutStop['reason'] | null;
      last_wave: number;
      started_at: Date;
      updated_at: Date;
    }>(`SELECT * FROM ${this.#rollouts} ORDER BY updated_at DESC LIMIT 1`);
    const row = rows[0];
    if (!row) return null;
    const { rows: waves } = await this.#pool.query<{
      wave: number;
      applied: number;
      up_to_date: number;
      failed: number;
      gone: number;
    }>(
      `SELECT wave,
              count(*) FILTER (WHERE outcome = 'applied')::int AS applied,
              count(*) FILTER (WHERE outcome = 'up-to-date')::int AS up_to_date,
              count(*) FILTER (WHERE outcome = 'failed')::int AS failed,
              count(*) FILTER (WHERE outcome = 'gone')::int AS gone
         FROM ${this.#outcomes} WHERE digest = $1 GROUP BY wave ORDER BY wave`,
      [row.digest],
    );
    return {
      digest: row.digest,
      files: row.files,
      state: row.state,
      stopReason: row.stop_reason,
      lastWave: row.last_wave,
      startedAt: row.started_at,
      updatedAt: row.updated_at,
      waves: waves.map((w) => ({
        wave: w.wave,
        applied: w.applied,
        upToDate: w.up_to_date,
        failed: w.failed,
        gone: w.gone,
      })),
    };
  }
}
