import { AsyncLocalStorage } from 'node:async_hooks';
import { Logger, type LoggerService } from '@nestjs/common';
import type pg from 'pg';
import type { ReplicaRouter } from './query-environment.js';
import { PoolQueryRunner, type QueryParams } from './query-runner.js';
import { DatabaseConnectionError, PoolAcquireTimeoutError } from '../../shared/errors.js';
import type { DrainController } from '../../connection/drain-controller.js';
import { describeTarget, isBrokenConnectionError } from '../../connection/connection-errors.js';
import { createPool, endPool } from '../../connection/create-pool.js';
import type { ConnectionSettings } from '../../connection/pool-options.js';
import {
  parseLsn,
  ReplicaHealthChecker,
  ReplicaMember,
  type ReplicaStatus,
} from '../../connection/replicas/replica-health.js';
import type { ResolvedReplicaOptions } from '../../connection/replicas/replica-options.js';
import {
  NoHealthyReplicaError,
  ReplicaWriteError,
} from '../../connection/replicas/replica.errors.js';

/** What one request or job has done on the primary, for read-your-writes. */
interface WriteMark {
  wrote: boolean;
  /** `'lsn'` mode: the primary's WAL insert position after the last write, fetched on demand. */
  target: Promise<bigint | undefined> | undefined;
}

// SQLSTATEs of a read a replica could not serve but another server can: a query cancelled by a
// conflict with WAL replay (40001 on a standby), or the server going away (57P*, 08*).
/** Longest wait for a replica pool's connections to close at shutdown. */
const POOL_END_TIMEOUT_MS = 5_000;
const RECOVERY_CONFLICT = '40001';
const READ_ONLY_TRANSACTION = '25006';

/**
 * The module's streaming replicas: one pool per replica, a health checker, and the routing of
 * `db.replica()` reads (round robin over healthy replicas, failing over to the next one or the
 * primary when a replica cannot serve). Read-your-writes is tracked per request or job: the
 * drain controller runs every admitted unit of work in {@link scope}.
 */
export class ReplicaSet implements ReplicaRouter {
  readonly #members: ReplicaMember[];
  readonly #primary: PoolQueryRunner;
  readonly #runners: Map<ReplicaMember, PoolQueryRunner>;
  readonly #checker: ReplicaHealthChecker;
  readonly #marks = new AsyncLocalStorage<WriteMark>();
  #next = 0;
  #closed: Promise<void> | undefined;

  constructor(
    primary: pg.Pool,
    settings: ConnectionSettings,
    private readonly options: ResolvedReplicaOptions,
    drain?: DrainController,
    logger: LoggerService = new Logger('DatabaseReplicas'),
  ) {
    this.#primary = new PoolQueryRunner({ pool: primary, drain });
    const max = options.max ?? primary.options.max ?? 10;
    this.#members = options.connections.map((connection) => {
      const pool = createPool(
        {
          connection,
          ssl: settings.ssl,
          pool: {
            ...settings.pool,
            max,
            min: Math.min(settings.pool?.min ?? 0, max),
            acquireTimeoutMs: options.acquireTimeoutMs,
          },
        },
        logger,
      );
      return new ReplicaMember(describeTarget(pool.options), pool);
    });
    this.#runners = new Map(
      this.#members.map((m) => [m, new PoolQueryRunner({ pool: m.pool, drain })]),
    );
    this.#checker = new ReplicaHealthChecker(primary, this.#members, options, logger);
  }

  /** Checks every replica once, then keeps polling. */
  start(): Promise<void> {
    return this.#checker.start();
  }

  /**
   * Runs `fn` as one request or job: reads after its writes see them. Work started inside one
   * (a `tenants.run()` in a request, a nested `run()` for any tenant) joins it: a write on either
   * side is seen by the later replica reads of both.
   */
  scope<T>(fn: () => T): T {
    if (this.#marks.getStore() !== undefined) return fn();
    return this.#marks.run({ wrote: false, target: undefined }, fn);
  }

  notePrimary(): void {
    const mark = this.#marks.getStore();
    if (mark === undefined) return;
    mark.wrote = true;
    mark.target = undefined;
  }

  /** Each replica's state, lag and read count. */
  statuses(): ReplicaStatus[] {
    return this.#members.map((m) => m.status());
  }

  async read<R extends pg.QueryResultRow>(
    text: string,
    params: QueryParams | undefined,
    arrayRows: boolean | undefined,
  ): Promise<pg.QueryResult<R>> {
    const mark = this.#marks.getStore();
    let minLsn: bigint | undefined;
    if (mark?.wrote) {
      if (this.options.readYourWrites === 'primary')
        return this.#onPrimary(text, params, arrayRows);
      mark.target ??= this.#insertLsn();
      minLsn = await mark.target;
      if (minLsn === undefined) return this.#onPrimary(text, params, arrayRows);
    }
    for (let tries = 0; tries < this.#members.length; tries++) {
      const member = this.#pick(minLsn);
      if (member === undefined) break;
      try {
        const result = await this.#runners.get(member)!.query<R>(text, params, arrayRows);
        member.reads++;
        return result;
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if (code === READ_ONLY_TRANSACTION)
          throw new ReplicaWriteError(member.name, { cause: err });
        if (code === RECOVERY_CONFLICT) continue;
        if (!unreachable(err)) throw err;
        member.markDown(err);
      }
    }
    if (minLsn === undefined && !this.options.fallbackToPrimary) {
      throw new NoHealthyReplicaError(
        this.#members.map((m) => `${m.name}: ${m.state}`).join(', ') || 'none configured',
      );
    }
    return this.#onPrimary(text, params, arrayRows);
  }

  #onPrimary<R extends pg.QueryResultRow>(
    text: string,
    params: QueryParams | undefined,
    arrayRows: boolean | undefined,
  ): Promise<pg.QueryResult<R>> {
    return this.#primary.query<R>(text, params, arrayRows);
  }

  /** Round robin over the replicas that are `up` and (read-your-writes) have replayed `minLsn`. */
  #pick(minLsn: bigint | undefined): ReplicaMember | undefined {
    const count = this.#members.length;
    for (let i = 0; i < count; i++) {
      const member = this.#members[(this.#next + i) % count];
      if (member.state !== 'up') continue;
      if (minLsn !== undefined && (member.replay === null || member.replay < minLsn)) continue;
      this.#next = (this.#next + i + 1) % count;
      return member;
    }
    return undefined;
  }

  /** The primary's WAL insert position: at or past the end of every write committed so far. */
  async #insertLsn(): Promise<bigint | undefined> {
    try {
      const { rows } = await this.#primary.query<{ lsn: string }>(
        'SELECT pg_current_wal_insert_lsn()::text AS lsn',
      );
      return parseLsn(rows[0].lsn);
    } catch {
      return undefined; // the read then goes to the primary, which says what is wrong
    }
  }

  /** Stops the health checks and closes the replica pools. Idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      await this.#checker.close();
      await Promise.all(
        this.#members.map((m) => endPool(m.pool, POOL_END_TIMEOUT_MS).catch(() => undefined)),
      );
    })();
    return this.#closed;
  }
}

/** The replica could not be reached or dropped the connection: another server may serve. */
function unreachable(err: unknown): boolean {
  return (
    err instanceof DatabaseConnectionError ||
    err instanceof PoolAcquireTimeoutError ||
    isBrokenConnectionError(err)
  );
}
