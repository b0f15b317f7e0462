import type pg from 'pg';
import { booleanOption, describeValue, integerOption } from '../../shared/option-values.js';
import { InvalidOptionsError } from '../../shared/errors.js';

/**
 * How reads made after a write in the same request or job see that write:
 *
 * - `'primary'`: once the context has sent anything to the primary, its replica reads go to the
 *   primary too, for the rest of the context. No extra round trip.
 * - `'lsn'`: the first replica read after a write asks the primary for its WAL insert position
 *   (one round trip) and goes to a replica whose last polled replay position has passed it, or to
 *   the primary when none has.
 */
export type ReadYourWritesMode = 'primary' | 'lsn';

/**
 * Streaming read replicas. Reads sent through `db.replica()` outside a transaction go to a
 * healthy replica; everything else (writes, transactions, the tenant registry, migrations) goes
 * to the primary, as without replicas.
 *
 * @example
 * replicas: { connections: [process.env.REPLICA_URL!], maxLagMs: 2_000 }
 */
export interface ReplicaOptions {
  /**
   * One `postgres://` URL or `pg.PoolConfig` per replica (each a hot standby of `connection`).
   * An empty list turns replicas off: `db.replica()` then reads from the primary.
   */
  connections: ReadonlyArray<string | pg.PoolConfig>;
  /**
   * A replica whose replay is more than this far behind the primary is skipped until it catches
   * up. Measured by the health check, so the effective bound is this plus `checkIntervalMs`.
   * Default: `5_000` ms.
   */
  maxLagMs?: number;
  /** How often each replica's state and replay position are polled. Default: `1_000` ms. */
  checkIntervalMs?: number;
  /**
   * Longest wait for a replica connection before the read falls back to the primary (the
   * replica is then marked down until the next successful check). Default: `1_000` ms.
   */
  acquireTimeoutMs?: number;
  /** Connections per replica pool. Default: `pool.max`. */
  max?: number;
  /** See {@link ReadYourWritesMode}. Default: `'primary'`. */
  readYourWrites?: ReadYourWritesMode;
  /**
   * Let a read go to the primary when no replica is healthy. With `false` it fails with
   * `NoHealthyReplicaError` instead (to protect a primary that cannot take the read load).
   * Default: `true`.
   */
  fallbackToPrimary?: boolean;
}

/** {@link ReplicaOptions} with every default filled in. */
export interface ResolvedReplicaOptions {
  readonly connections: ReadonlyArray<string | pg.PoolConfig>;
  readonly maxLagMs: number;
  readonly checkIntervalMs: number;
  readonly acquireTimeoutMs: number;
  readonly max: number | undefined;
  readonly readYourWrites: ReadYourWritesMode;
  readonly fallbackToPrimary: boolean;
}

/** The replica options that have a fixed default. */
export type ReplicaDefaults = Readonly<Required<Omit<ReplicaOptions, 'connections' | 'max'>>>;

/** The defaults, in one place. */
export const REPLICA_DEFAULTS: ReplicaDefaults = Object.freeze({
  maxLagMs: 5_000,
  checkIntervalMs: 1_000,
  acquireTimeoutMs: 1_000,
  readYourWrites: 'primary',
  fallbackToPrimary: true,
});

const KNOWN = new Set([
  'connections',
  'maxLagMs',
  'checkIntervalMs',
  'acquireTimeoutMs',
  'max',
  'readYourWrites',
  'fallbackToPrimary',
]);

/** Fills in defaults and checks values. @throws InvalidOptionsError */
export function resolveReplicaOptions(options: ReplicaOptions): ResolvedReplicaOptions {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new InvalidOptionsError(
      `replicas must be an object such as { connections: ['postgres://…'] }, received ${describeValue(options)}.`,
    );
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) {
      throw new InvalidOptionsError(
        `Unknown replicas option "${key}". Known options: ${[...KNOWN].join(', ')}.`,
      );
    }
  }
  const connections: unknown = options.connections;
  if (
    !Array.isArray(connections) ||
    connections.some((c: unknown) => typeof c !== 'string' && (c === null || typeof c !== 'object'))
  ) {
    throw new InvalidOptionsError(
      'replicas.connections must be an array of postgres:// URLs or pg.PoolConfig objects.',
    );
  }
  const mode = options.readYourWrites ?? REPLICA_DEFAULTS.readYourWrites;
  if (mode !== 'primary' && mode !== 'lsn') {
    throw new InvalidOptionsError(
      `replicas.readYourWrites must be 'primary' or 'lsn', received ${describeValue(mode)}.`,
    );
  }
  return Object.freeze({
    connections: Object.freeze([...(connections as Array<string | pg.PoolConfig>)]),
    maxLagMs: integerOption(options.maxLagMs ?? REPLICA_DEFAULTS.maxLagMs, 'replicas.maxLagMs'),
    checkIntervalMs: integerOption(
      options.checkIntervalMs ?? REPLICA_DEFAULTS.checkIntervalMs,
      'replicas.checkIntervalMs',
      10,
    ),
    acquireTimeoutMs: integerOption(
      options.acquireTimeoutMs ?? REPLICA_DEFAULTS.acquireTimeoutMs,
      'replicas.acquireTimeoutMs',
      1,
    ),
    max: options.max === undefined ? undefined : integerOption(options.max, 'replicas.max', 1),
    readYourWrites: mode,
    fallbackToPrimary: booleanOption(
      options.fallbackToPrimary ?? REPLICA_DEFAULTS.fallbackToPrimary,
      'replicas.fallbackToPrimary',
    ),
  });
}
