import { assertIdentifier, MAX_IDENTIFIER_BYTES } from '../core/identifiers.js';
import { InvalidOptionsError } from '../errors.js';
import { fromHeader, type TenantResolver } from './tenant-resolvers.js';

/** Schema-per-tenant configuration (`tenancy` in `DatabaseModule.forRoot`). */
export interface TenancyOptions {
  /** Folder of `NNN_description.sql` migrations applied to every tenant schema. Default: none. */
  migrations?: string;
  /** A tenant's schema is this prefix plus its id. Default: `'tenant_'`. */
  schemaPrefix?: string;
  /** How a request names its tenant. Default: `fromHeader('x-tenant-id')`. */
  resolver?: TenantResolver;
  /** Schema holding the `tenants` registry table. Default: `'tenancy'`. */
  registrySchema?: string;
  /**
   * Accepted tenant ids. Anything else is a 400 before any SQL runs. Must not allow characters
   * outside `[A-Za-z0-9_$]`, since the id becomes part of a schema name.
   * Default: `/^[a-z0-9][a-z0-9_]{0,39}$/`.
   */
  idPattern?: RegExp;
  /**
   * Tenants migrated in parallel by `migrateAll()` (each on its own connection; capped at
   * `pool.max`). Default: `4`.
   */
  migrationConcurrency?: number;
  /** Fail start-up when a tenant's migrations fail (the others are still migrated). Default: `true`. */
  failOnMigrationError?: boolean;
  /**
   * Routes need a tenant unless marked `@NoTenant()`. With `false`, a request without a tenant id
   * runs without a tenant context. Default: `true`.
   */
  required?: boolean;
  /** Register `TenantInterceptor` globally. Default: `true`. */
  interceptor?: boolean;
  /**
   * How long an unknown id is remembered as unknown while the instance cannot prove its view
   * current (listener down or silent; while it is current, misses cost no query at all). A tenant
   * created meanwhile is found at the latest after this. Default: `5_000` ms.
   */
  negativeCacheMs?: number;
  /**
   * The staleness bound: a change to the registry (a suspension, a drop, an operator's SQL) takes
   * effect on every instance within this time, in every failure mode, a silently dead listener
   * included. Each instance proves its view current with a heartbeat every quarter of it; when it
   * cannot, a tenant's entry older than this is re-checked against the table (one indexed query)
   * before it is used. Default: `5_000` ms.
   */
  maxStalenessMs?: number;
  /**
   * When change notifications cannot arrive (LISTEN through a transaction-mode pooler, detected
   * at start-up), the registry is reloaded this often instead. Default: `1_000` ms.
   */
  pollIntervalMs?: number;
}

/** `TenancyOptions` with defaults filled in. */
export interface ResolvedTenancyOptions {
  readonly migrations: string | undefined;
  readonly schemaPrefix: string;
  readonly resolver: TenantResolver;
  readonly registrySchema: string;
  readonly idPattern: RegExp;
  readonly migrationConcurrency: number;
  readonly failOnMigrationError: boolean;
  readonly required: boolean;
  readonly interceptor: boolean;
  readonly negativeCacheMs: number;
  readonly maxStalenessMs: number;
  readonly pollIntervalMs: number;
}

/** Defaults of the tenancy options that are numbers. */
export const TENANCY_TIMING_DEFAULTS = Object.freeze({
  negativeCacheMs: 5_000,
  maxStalenessMs: 5_000,
  pollIntervalMs: 1_000,
});

/** @throws InvalidOptionsError */
export function resolveTenancyOptions(options: TenancyOptions): ResolvedTenancyOptions {
  const resolved: ResolvedTenancyOptions = {
    migrations: options.migrations,
    schemaPrefix: options.schemaPrefix ?? 'tenant_',
    resolver: options.resolver ?? fromHeader('x-tenant-id'),
    registrySchema: options.registrySchema ?? 'tenancy',
    idPattern: options.idPattern ?? /^[a-z0-9][a-z0-9_]{0,39}$/,
    migrationConcurrency: options.migrationConcurrency ?? 4,
    failOnMigrationError: options.failOnMigrationError ?? true,
    required: options.required ?? true,
    interceptor: options.interceptor ?? true,
    negativeCacheMs: options.negativeCacheMs ?? TENANCY_TIMING_DEFAULTS.negativeCacheMs,
    maxStalenessMs: options.maxStalenessMs ?? TENANCY_TIMING_DEFAULTS.maxStalenessMs,
    pollIntervalMs: options.pollIntervalMs ?? TENANCY_TIMING_DEFAULTS.pollIntervalMs,
  };
  assertIdentifier(resolved.registrySchema, 'registry schema');
  if (resolved.schemaPrefix !== '' && !/^[A-Za-z_][A-Za-z0-9_$]*$/.test(resolved.schemaPrefix)) {
    throw new InvalidOptionsError(
      `tenancy.schemaPrefix ${JSON.stringify(resolved.schemaPrefix)} must start with a letter or "_" and contain only letters, digits, "_" or "$".`,
    );
  }
  if (Buffer.byteLength(resolved.schemaPrefix) >= MAX_IDENTIFIER_BYTES) {
    throw new InvalidOptionsError(
      'tenancy.schemaPrefix leaves no room for the tenant id within 63 bytes.',
    );
  }
  if (!(resolved.idPattern instanceof RegExp)) {
    throw new InvalidOptionsError('tenancy.idPattern must be a RegExp.');
  }
  if (typeof resolved.resolver !== 'function') {
    throw new InvalidOptionsError(
      'tenancy.resolver must be a function, e.g. fromHeader("x-tenant-id").',
    );
  }
  if (!Number.isInteger(resolved.pollIntervalMs) || resolved.pollIntervalMs < 100) {
    throw new InvalidOptionsError('tenancy.pollIntervalMs must be an integer of at least 100 ms.');
  }
  if (!Number.isInteger(resolved.maxStalenessMs) || resolved.maxStalenessMs < 100) {
    throw new InvalidOptionsError(
      'tenancy.maxStalenessMs must be an integer of at least 100 ms (heartbeats go out every quarter of it).',
    );
  }
  if (!Number.isInteger(resolved.migrationConcurrency) || resolved.migrationConcurrency < 1) {
    throw new InvalidOptionsError('tenancy.migrationConcurrency must be a positive integer.');
  }
  return Object.freeze(resolved);
}
