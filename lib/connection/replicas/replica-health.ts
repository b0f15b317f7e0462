import type { LoggerService } from '@nestjs/common';
import type pg from 'pg';

/**
 * A replica's state as last seen by the health check:
 * - `up`: in recovery (a standby) and within `replicas.maxLagMs`: it serves reads;
 * - `lagging`: replay is further behind than `maxLagMs`: skipped until it catches up;
 * - `down`: the check (or a read) could not reach it: skipped until a check succeeds;
 * - `not-replica`: it answers but is not in recovery (promoted, or not a standby): skipped, since
 *   it no longer follows the primary. Failover is the operator's: point the options at the new
 *   topology;
 * - `unknown`: not checked yet.
 */
export type ReplicaState = 'up' | 'lagging' | 'down' | 'not-replica' | 'unknown';

/** One replica's health, for the monitor, health checks and metrics. */
export interface ReplicaStatus {
  /** `user@host:port/database` (never the password). */
  readonly name: string;
  /** Whether it serves reads (`up`) and if not, why. */
  readonly state: ReplicaState;
  /**
   * How long ago the primary had first written WAL the replica has not replayed yet (0 when it
   * has replayed everything the primary had at the last check); `null` when unknown.
   */
  readonly lagMs: number | null;
  /** WAL bytes between the primary's position and the replica's replay position; `null` when unknown. */
  readonly lagBytes: number | null;
  /** The replica's `pg_last_wal_replay_lsn()` at the last check, e.g. `'0/3000148'`. */
  readonly replayLsn: string | null;
  /** Reads it has served. */
  readonly reads: number;
  /** When it was last checked (epoch ms); `null` before the first check. */
  readonly checkedAt: number | null;
  /** Why it is `down` (the last error, without the password). */
  readonly error?: string;
}

/** Parses a `pg_lsn` text (`'16/B374D848'`) into a comparable number of bytes. */
export function parseLsn(text: string): bigint {
  const [high, low] = text.split('/');
  return (BigInt(`0x${high}`) << 32n) + BigInt(`0x${low}`);
}

function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** What the health check and the router know about one replica. Internal. */
export class ReplicaMember {
  state: ReplicaState = 'unknown';
  replay: bigint | null = null;
  lagMs: number | null = null;
  lagBytes: number | null = null;
  reads = 0;
  checkedAt: number | null = null;
  error: string | undefined;

  constructor(
    readonly name: string,
    readonly pool: pg.Pool,
  ) {}

  /** A read could not reach it: skip it until the next successful check. */
  markDown(err: unknown): void {
    this.state = 'down';
    this.error = err instanceof Error ? err.message : String(err);
  }

  status(): ReplicaStatus {
    return {
      name: this.name,
      state: this.state,
      lagMs: this.lagMs,
      lagBytes: this.lagBytes,
      replayLsn: this.replay === null ? null : formatLsn(this.replay),
      reads: this.reads,
      checkedAt: this.checkedAt,
      ...(this.error !== undefined ? { error: this.error } : {}),
    };
  }
}

interface Sample {
  readonly at: number;
  readonly lsn: bigint;
}

/**
 * Polls the primary's WAL position and each replica's recovery state and replay position every
 * `checkIntervalMs`, and moves each replica between `up`, `lagging`, `down` and `not-replica`.
 *
 * Lag in time is read from the primary's own history: the replica is as far behind as the
 * oldest primary position (sampled at each check) it has not replayed yet. Unlike
 * `now() - pg_last_xact_replay_timestamp()`, this stays 0 on an idle primary, and it needs no
 * clock agreement between servers.
 */
export class ReplicaHealthChecker {
  readonly #samples: Sample[] = [];
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #closed = false;

  constructor(
    private readonly primary: pg.Pool,
    private readonly members: readonly ReplicaMember[],
    private readonly options: { readonly maxLagMs: number; readonly checkIntervalMs: number },
    private readonly logger: LoggerService,
  ) {}

  /** Runs a first check (so start-up knows each replica's state), then one per interval. */
  async start(): Promise<void> {
    await this.check();
    this.#schedule();
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      void this.check().finally(() => this.#schedule());
    }, this.options.checkIntervalMs);
    this.#timer.unref();
  }

  /** One round of checks; concurrent callers share it. Never throws. */
  check(): Promise<void> {
    this.#running ??= this.#checkOnce().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #checkOnce(): Promise<void> {
    const now = Date.now();
    const primaryLsn = await this.primary
      .query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn')
      .then(
        (r) => parseLsn(r.rows[0].lsn),
        () => undefined,
      );
    if (primaryLsn !== undefined) this.#remember({ at: now, lsn: primaryLsn });
    await Promise.all(this.members.map((member) => this.#checkMember(member, primaryLsn)));
  }

  #remember(sample: Sample): void {
    const last = this.#samples.at(-1);
    if (last && last.lsn === sample.lsn) return; // an idle primary: the older sample stays the reference
    this.#samples.push(sample);
    // Enough history to tell "more than maxLagMs behind" apart, plus slack.
    const keep = Math.ceil(this.options.maxLagMs / this.options.checkIntervalMs) + 4;
    if (this.#samples.length > keep) this.#samples.splice(0, this.#samples.length - keep);
  }

  async #checkMember(member: ReplicaMember, primaryLsn: bigint | undefined): Promise<void> {
    const before = member.state;
    try {
      const { rows } = await member.pool.query<{ recovery: boolean; replay: string | null }>(
        'SELECT pg_is_in_recovery() AS recovery, pg_last_wal_replay_lsn()::text AS replay',
      );
      const row = rows[0];
      member.checkedAt = Date.now();
      member.error = undefined;
      if (!row.recovery || row.replay === null) {
        member.state = 'not-replica';
        member.lagMs = member.lagBytes = null;
        member.replay = null;
      } else {
        const replay = parseLsn(row.replay);
        member.replay = replay;
        member.lagBytes =
          primaryLsn === undefined ? null : Number(primaryLsn > replay ? primaryLsn - replay : 0n);
        member.lagMs = this.#lagMs(replay, member.checkedAt);
        member.state = member.lagMs > this.options.maxLagMs ? 'lagging' : 'up';
      }
    } catch (err) {
      member.checkedAt = Date.now();
      member.markDown(err);
    }
    if (member.state !== before) this.#logTransition(member, before);
  }

  /** Age of the oldest primary position the replica has not replayed yet (0: none). */
  #lagMs(replay: bigint, now: number): number {
    const behind = this.#samples.find((s) => s.lsn > replay);
    return behind === undefined ? 0 : Math.max(0, now - behind.at);
  }

  #logTransition(member: ReplicaMember, before: ReplicaState): void {
    const { name, state } = member;
    if (state === 'up') {
      if (before !== 'unknown') this.logger.log(`Replica ${name} is healthy again: reads resume.`);
      return;
    }
    const why =
      state === 'down'
        ? `unreachable (${member.error})`
        : state === 'lagging'
          ? `${member.lagMs} ms behind the primary (bound replicas.maxLagMs ${this.options.maxLagMs} ms)`
          : 'not in recovery: promoted or not a standby; point replicas.connections at the current standbys';
    this.logger.warn(`Replica ${name} is ${why}; its reads go elsewhere until it is healthy.`);
  }

  /** Stops polling and waits for a running check. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#running;
  }
}
