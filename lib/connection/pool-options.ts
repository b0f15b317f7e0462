import type { ConnectionOptions } from 'node:tls';
import type pg from 'pg';
import { parse as parseConnectionString } from 'pg-connection-string';
import { booleanOption, describeValue, integerOption } from '../shared/option-values.js';
import { InvalidOptionsError } from '../shared/errors.js';

/** Sizing and time limits of the shared pool. Every field is optional. */
export interface PoolOptions {
  /** Most connections the pool opens. Default: `10`. */
  max?: number;
  /** Connections kept open even when idle. Default: `0`. */
  min?: number;
  /** Close a connection after it has been idle this long. Default: `10_000` ms. */
  idleTimeoutMs?: number;
  /**
   * Longest wait for a free connection (or for a new one to open) before the call fails with
   * `PoolAcquireTimeoutError`, instead of queueing forever when the pool is exhausted.
   * Default: `5_000` ms.
   */
  acquireTimeoutMs?: number;
  /**
   * Server-side `statement_timeout`: PostgreSQL cancels any statement that runs longer, so a
   * runaway query cannot hold a connection forever. `0` disables it. Default: `30_000` ms.
   */
  statementTimeoutMs?: number;
  /**
   * Server-side `idle_in_transaction_session_timeout`: PostgreSQL ends a session that sits in
   * an open transaction this long without sending anything (a forgotten `await`), releasing its
   * locks. `0` disables it. Default: `60_000` ms.
   */
  idleInTransactionTimeoutMs?: number;
  /** Server-side `lock_timeout`. `0` disables it. Default: `0` (wait for locks up to `statementTimeoutMs`). */
  lockTimeoutMs?: number;
  /** `application_name` shown in `pg_stat_activity`. Default: `'nestjs-pg-tenancy'`. */
  applicationName?: string;
  /**
   * Close and replace a connection after this many seconds (pg-pool's `maxLifetimeSeconds`; a
   * busy connection is replaced when it is released), so load spreads again after a failover
   * or a PgBouncer restart, and the server memory a connection accumulates (the catalog
   * caches of every tenant schema it served, its prepared statements) is returned now and
   * then. `0` disables it. Default: `3_600` (an hour).
   */
  maxLifetimeSeconds?: number;
  /**
   * Close and replace a connection after it has been checked out this many times (pg-pool's
   * `maxUses`). A connection that serves many tenant schemas keeps every one's relations
   * cached in its backend, and PostgreSQL never evicts them: this bounds how many a connection
   * can collect, at the cost of one reconnect (and re-preparing its statements) per `maxUses`
   * queries. `0` disables it. Default: `0`.
   */
  maxUses?: number;
  /**
   * Tenant affinity: each schema prefers `preferredConnections` of the pool's connections
   * (chosen by rendezvous hashing over `max` lanes), and a checkout for it takes an idle
   * preferred connection when there is one. Otherwise it takes any idle connection (work
   * stealing), so a query never waits on a busy lane while another connection sits idle. A
   * connection then serves a bounded set of tenants: its backend caches fewer schemas'
   * catalogs, and its managed prepared statements keep hitting. `true` stands for
   * `{ preferredConnections: 1 }`; `false` keeps pg-pool's order (the most recently released
   * idle connection, waiters first come first served). No session state is ever set, so it is
   * harmless behind PgBouncer. See docs/production.md, "Tenant affinity".
   * Default: `true` (`{ preferredConnections: 1 }`).
   *
   * @example
   * pool: { max: 20, affinity: { preferredConnections: 2 } }
   */
  affinity?:
    | boolean
    | {
        /**
         * How many of the pool's connections each schema prefers, at most `max`. More spreads
         * one busy tenant over more connections; fewer keeps each connection's set of tenants
         * smaller. Default: `1`.
         */
        preferredConnections?: number;
      };
  /**
   * The server memory a connection may accumulate in catalog caches before it is replaced.
   * PostgreSQL never evicts the relations a backend has touched: a fresh backend takes about
   * 2 MiB, and each schema it serves adds about `perSchemaKiB` (one query in each of 1,000
   * one-table schemas grew a backend to 12.9 MiB; 10,000 to 98 MiB). A connection that has
   * served more than `floor((budgetMiB * 1024 - 2048) / perSchemaKiB)` distinct schemas (at
   * least 1) is closed when it is released, and a new one opens on demand. `false` turns the
   * schema count off (`maxUses` and `maxLifetimeSeconds` still apply). With `affinity` on,
   * each connection sees few schemas and this is rare. Default: `{ budgetMiB: 64, perSchemaKiB:
   * 10 }` (6,348 schemas a connection).
   *
   * @example
   * pool: { backendMemory: { budgetMiB: 32 } } // about 3,000 schemas a connection
   */
  backendMemory?:
    | false
    | {
        /** The memory budget of one backend, in MiB, at least 3. Default: `64`. */
        budgetMiB?: number;
        /**
         * What each schema a backend serves adds to it, in KiB: measure yours with a
         * query on `pg_backend_memory_contexts` after a sweep. Default: `10` (one small table
         * and its index per schema).
         */
        perSchemaKiB?: number;
      };
}

/** Where and how to connect. */
export interface ConnectionSettings {
  /**
   * A `postgres://` URL or a `pg.PoolConfig`. When omitted, `DATABASE_URL` is used if set, and
   * otherwise `pg` reads the standard `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`.
   * Pool sizing set here is overridden by `pool`.
   */
  connection?: string | pg.PoolConfig;
  /**
   * A connection straight to PostgreSQL, for the work that needs a real session: migrations
   * (advisory locks) and the tenant change listener (LISTEN). Set it when `connection` goes
   * through PgBouncer in transaction mode. Default: `connection`.
   */
  directConnection?: string | pg.PoolConfig;
  /** Pool sizing and server-side time limits. */
  pool?: PoolOptions;
  /**
   * TLS: `true` for TLS with certificate verification, or `node:tls` options (`ca`, `cert`,
   * `key`, `rejectUnauthorized`, `servername`). Default: whatever `connection` says (`sslmode`
   * in the URL), otherwise no TLS.
   */
  ssl?: boolean | ConnectionOptions;
}

/** The pool options with every default filled in. */
export type ResolvedPoolOptions = Readonly<
  Required<Omit<PoolOptions, 'affinity' | 'backendMemory'>>
> & {
  /** `false`, or the affinity settings in full. */
  readonly affinity:
    | false
    | {
        /** See `PoolOptions.affinity`. */
        readonly preferredConnections: number;
      };
  /** `false`, or the budget in full. */
  readonly backendMemory:
    | false
    | {
        /** See `PoolOptions.backendMemory`. */
        readonly budgetMiB: number;
        /** See `PoolOptions.backendMemory`. */
        readonly perSchemaKiB: number;
      };
};

/** The defaults, in one place. */
export const POOL_DEFAULTS: ResolvedPoolOptions = Object.freeze({
  max: 10,
  min: 0,
  idleTimeoutMs: 10_000,
  acquireTimeoutMs: 5_000,
  statementTimeoutMs: 30_000,
  idleInTransactionTimeoutMs: 60_000,
  lockTimeoutMs: 0,
  applicationName: 'nestjs-pg-tenancy',
  maxLifetimeSeconds: 3_600,
  maxUses: 0,
  affinity: Object.freeze({ preferredConnections: 1 }),
  backendMemory: Object.freeze({ budgetMiB: 64, perSchemaKiB: 10 }),
});

/** A fresh backend's memory, KiB, before it has served any schema. */
const FRESH_BACKEND_KIB = 2048;

/**
 * How many distinct schemas a connection may serve within `backendMemory`'s budget:
 * `undefined` without a bound.
 */
export function schemaBound(memory: ResolvedPoolOptions['backendMemory']): number | undefined {
  if (memory === false) return undefined;
  return Math.max(
    1,
    Math.floor((memory.budgetMiB * 1024 - FRESH_BACKEND_KIB) / memory.perSchemaKiB),
  );
}

/** Fills in defaults and checks ranges. @throws InvalidOptionsError */
export function resolvePoolOptions(options: PoolOptions = {}): ResolvedPoolOptions {
  const resolved = { ...POOL_DEFAULTS };
  for (const [key, value] of Object.entries(options) as [keyof PoolOptions, unknown][]) {
    if (value === undefined) continue;
    if (!(key in POOL_DEFAULTS)) {
      throw new InvalidOptionsError(
        `Unknown pool option "${key}". Known options: ${Object.keys(POOL_DEFAULTS).join(', ')}.`,
      );
    }
    if (key === 'affinity' || key === 'backendMemory') continue;
    if (key === 'applicationName') {
      if (typeof value !== 'string' || value.length > 63) {
        throw new InvalidOptionsError(
          'pool.applicationName must be a string of at most 63 characters.',
        );
      }
      (resolved as Record<string, unknown>)[key] = value;
    } else {
      (resolved as Record<string, unknown>)[key] = integerOption(value, `pool.${key}`);
    }
  }
  if (resolved.max < 1) throw new InvalidOptionsError('pool.max must be at least 1.');
  if (resolved.min > resolved.max) {
    throw new InvalidOptionsError(
      `pool.min (${resolved.min}) cannot exceed pool.max (${resolved.max}).`,
    );
  }
  if (resolved.acquireTimeoutMs < 1) {
    throw new InvalidOptionsError(
      'pool.acquireTimeoutMs must be at least 1 ms: an unbounded wait can hang requests forever.',
    );
  }
  if (options.affinity !== undefined) {
    (resolved as { affinity: unknown }).affinity = resolveAffinity(options.affinity, resolved.max);
  }
  if (options.backendMemory !== undefined) {
    (resolved as { backendMemory: unknown }).backendMemory = resolveBackendMemory(
      options.backendMemory,
    );
  }
  return Object.freeze(resolved);
}

function resolveAffinity(value: unknown, max: number): ResolvedPoolOptions['affinity'] {
  if (typeof value === 'boolean' || typeof value === 'string') {
    return booleanOption(value, 'pool.affinity') ? POOL_DEFAULTS.affinity : false;
  }
  const fields = optionObject(value, 'pool.affinity', ['preferredConnections'], 'true, false or');
  const preferredConnections =
    fields.preferredConnections === undefined
      ? (POOL_DEFAULTS.affinity as { preferredConnections: number }).preferredConnections
      : integerOption(fields.preferredConnections, 'pool.affinity.preferredConnections', 1);
  if (preferredConnections > max) {
    throw new InvalidOptionsError(
      `pool.affinity.preferredConnections (${preferredConnections}) cannot exceed pool.max (${max}): ` +
        'set it to at most pool.max, or set affinity: false to let every schema use every connection alike.',
    );
  }
  return Object.freeze({ preferredConnections });
}

function resolveBackendMemory(value: unknown): ResolvedPoolOptions['backendMemory'] {
  if (value === false || value === 'false') return false;
  const fields = optionObject(
    value,
    'pool.backendMemory',
    ['budgetMiB', 'perSchemaKiB'],
    'false or',
  );
  const defaults = POOL_DEFAULTS.backendMemory as { budgetMiB: number; perSchemaKiB: number };
  const budgetMiB =
    fields.budgetMiB === undefined
      ? defaults.budgetMiB
      : integerOption(fields.budgetMiB, 'pool.backendMemory.budgetMiB', 1);
  if (budgetMiB < 3) {
    throw new InvalidOptionsError(
      `pool.backendMemory.budgetMiB must be at least 3, received ${budgetMiB}: a fresh backend alone takes about 2 MiB. ` +
        'Set a budget above it, or backendMemory: false to recycle connections only by maxUses and maxLifetimeSeconds.',
    );
  }
  const perSchemaKiB =
    fields.perSchemaKiB === undefined
      ? defaults.perSchemaKiB
      : integerOption(fields.perSchemaKiB, 'pool.backendMemory.perSchemaKiB', 1);
  return Object.freeze({ budgetMiB, perSchemaKiB });
}

/** `value` as an object with only the `known` fields. @throws InvalidOptionsError */
function optionObject(
  value: unknown,
  name: string,
  known: readonly string[],
  alternatives: string,
): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidOptionsError(
      `${name} must be ${alternatives} an object { ${known.join(', ')} }, received ${describeValue(value)}.`,
    );
  }
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw new InvalidOptionsError(
        `Unknown option "${name}.${key}". Known options: ${known.join(', ')}.`,
      );
    }
  }
  return value as Record<string, unknown>;
}

/** Builds the `pg.Pool` configuration from the module's connection settings. */
export function toPgPoolConfig(settings: ConnectionSettings): pg.PoolConfig {
  const pool = resolvePoolOptions(settings.pool);
  const connection = settings.connection ?? process.env.DATABASE_URL;
  if (
    connection !== undefined &&
    typeof connection !== 'string' &&
    typeof connection !== 'object'
  ) {
    throw new InvalidOptionsError(
      'connection must be a postgres:// URL or a pg.PoolConfig object.',
    );
  }
  if (typeof connection === 'string') assertConnectionString(connection, 'connection');
  else if (typeof connection?.connectionString === 'string') {
    assertConnectionString(connection.connectionString, 'connection.connectionString');
  }
  const base: pg.PoolConfig =
    typeof connection === 'string' ? { connectionString: connection } : { ...(connection ?? {}) };
  return {
    ...base,
    ...(settings.ssl !== undefined ? { ssl: settings.ssl } : {}),
    max: pool.max,
    min: pool.min,
    idleTimeoutMillis: pool.idleTimeoutMs,
    connectionTimeoutMillis: pool.acquireTimeoutMs,
    maxLifetimeSeconds: pool.maxLifetimeSeconds,
    ...(pool.maxUses > 0 ? { maxUses: pool.maxUses } : {}),
    application_name: pool.applicationName,
    // Sent in the startup packet: server-side limits with no extra round trip per checkout.
    ...(pool.statementTimeoutMs > 0 ? { statement_timeout: pool.statementTimeoutMs } : {}),
    ...(pool.idleInTransactionTimeoutMs > 0
      ? { idle_in_transaction_session_timeout: pool.idleInTransactionTimeoutMs }
      : {}),
    ...(pool.lockTimeoutMs > 0 ? { lock_timeout: pool.lockTimeoutMs } : {}),
  };
}

/**
 * Settings for connections that need a session of their own (migrations, LISTEN):
 * `directConnection` when given, otherwise the pool's.
 */
export function toSessionConfig(settings: ConnectionSettings): pg.PoolConfig {
  return settings.directConnection === undefined
    ? toPgPoolConfig(settings)
    : toPgPoolConfig({ ...settings, connection: settings.directConnection });
}

/** URL schemes `pg` connects with (`socket:` is its form for a Unix socket with options). */
const KNOWN_SCHEMES = new Set(['postgres', 'postgresql', 'socket']);

/**
 * Parses `url` as `pg` will, at start-up: a malformed URL otherwise surfaces on the first query
 * as a raw `TypeError` from deep inside `pg`. The message never repeats the URL, which may hold
 * the password.
 *
 * @throws InvalidOptionsError
 */
function assertConnectionString(url: string, name: string): void {
  // pg reads anything else as a path relative to `postgres://base`: a typo in the scheme, or a
  // URL without one, would otherwise fail later as "getaddrinfo ENOTFOUND base".
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (!url.startsWith('/') && !KNOWN_SCHEMES.has(scheme ?? '')) {
    throw new InvalidOptionsError(
      `${name} must start with postgres:// or postgresql:// (or be a Unix socket path)` +
        (scheme !== undefined && /^[a-z]{1,20}$/.test(scheme) && url.includes('://')
          ? `, not ${scheme}://`
          : ', and it has no such scheme') +
        '; the rest is not repeated here because it may hold a password. Example: postgres://user:password@host:5432/database.',
    );
  }
  try {
    parseConnectionString(url);
  } catch (err) {
    throw new InvalidOptionsError(
      `${name} is not a valid postgres:// URL (${(err as Error).message}); it is not repeated here because it may hold a password. ` +
        'Check the host and port, and percent-encode special characters in the user name and password (encodeURIComponent).',
    );
  }
}

/**
 * `config` without the pool's `statement_timeout` and `lock_timeout`, for a session whose work
 * legitimately runs long (migrations, index builds, copies of whole tenants). With
 * `keepLockTimeout`, only the statement timeout goes.
 */
export function withoutTimeouts(
  config: pg.ClientConfig,
  options: { readonly keepLockTimeout?: boolean } = {},
): pg.ClientConfig {
  const {
    statement_timeout: _statementTimeout,
    lock_timeout: lockTimeout,
    ...rest
  } = config as pg.ClientConfig & { lock_timeout?: number };
  return options.keepLockTimeout && lockTimeout !== undefined
    ? { ...rest, lock_timeout: lockTimeout }
    : rest;
}
