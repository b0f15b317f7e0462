import {
  resolvePooledTier,
  type PooledTierOptions,
  type ResolvedPooledTier,
} from './tenant-tier.js';
import { assertIdentifier, MAX_IDENTIFIER_BYTES } from '../shared/identifiers.js';
import { booleanOption, describeValue, integerOption } from '../shared/option-values.js';
import { InvalidOptionsError } from '../shared/errors.js';
import type { ExecutionContext } from '@nestjs/common';
import type { ModuleRef } from '@nestjs/core';
import type { CitusMode } from './citus/citus.js';
import { fromHeader, type TenantResolver } from './routing/tenant-resolvers.js';

/**
 * Decides whether the caller of a request may enter tenant `tenantId`. Runs for every tenant
 * request after the id is validated and before the tenant is looked up or any of its SQL runs;
 * anything but `true` (or a throw) answers 403 with `TenantAccessDeniedError`. A thrown Nest
 * `HttpException` (say an `UnauthorizedException`) keeps its own status.
 *
 * `context` is the request's (the authenticated principal is `request.user`, set by your guard or
 * passport); `moduleRef` reaches your providers, e.g. a membership service.
 *
 * @example
 * authorize: (tenantId, ctx) =>
 *   ctx.switchToHttp().getRequest().user?.tenants?.includes(tenantId) === true
 */
export type TenantAuthorizer = (
  tenantId: string,
  context: ExecutionContext,
  moduleRef: ModuleRef,
) => boolean | Promise<boolean>;

/** Schema-per-tenant configuration (`tenancy` in `DatabaseModule.forRoot`). */
export interface TenancyOptions {
  /** Folder of `NNN_description.sql` migrations applied to every tenant schema. Default: none. */
  migrations?: string;
  /** A tenant's schema is this prefix plus its id. Default: `'tenant_'`. */
  schemaPrefix?: string;
  /**
   * How a request names its tenant. Default: `fromHeader('x-tenant-id')`, which trusts whatever
   * the client sends: acceptable only behind a gateway that sets the header itself. Otherwise
   * take the tenant from the authenticated principal (`fromUser('tenantId')`), or check the
   * header against it with `authorize`.
   */
  resolver?: TenantResolver;
  /**
   * Who may enter which tenant: see {@link TenantAuthorizer}. Default: none (every caller that
   * names an existing, active tenant enters it).
   */
  authorize?: TenantAuthorizer;
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
  /**
   * Create tenants by copying a template schema (`<registrySchema>$template`, kept at the tenant
   * migrations by `migrateAll()` and at start-up) instead of replaying every migration file: same
   * objects, rows and history, in a fraction of the time. Files marked
   * `-- pg-tenancy: no-template`, and what cannot be copied exactly, are replayed. Default: `true`.
   */
  template?: boolean;
  /**
   * With `template`, how many spare schemas (`<registrySchema>$spare_<n>`, copies of the template
   * made ahead of time) to keep ready: `create()` renames one to the new tenant's schema instead
   * of copying the template, and a new spare is made in the background. `0` turns spares off.
   * Default: `2`.
   */
  templateSpares?: number;
  /** Fail start-up when a tenant's migrations fail (the others are still migrated). Default: `true`. */
  failOnMigrationError?: boolean;
  /**
   * Routes need a tenant unless marked `@NoTenant()`. With `false`, a request without a tenant id
   * runs without a tenant context. Default: `true`.
   */
  required?: boolean;
  /**
   * Register `TenantInterceptor` globally. Default: `true`. With `false`, mount
   * `TenantMiddleware` to resolve tenants; a small interceptor still finishes HTTP requests as
   * the full one would (400 for a route that needs a tenant when none is named, `@NoTenant()`
   * routes without a tenant, resolvers that read route params, 404 when the tenant is dropped
   * mid-flight). Other contexts (RPC, WebSockets) get no tenant resolution.
   */
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
   * Fair share of the shared pool: the most connections one tenant's work (a request or job in
   * its tenant context) holds at once. Its further queries wait in that tenant's own queue, up
   * to `pool.acquireTimeoutMs` (then `TenantShareTimeoutError`), so one tenant's burst can take
   * at most this much of the pool and other tenants' queries still find connections. Work
   * outside a tenant context is not capped. Set it to `pool.max` to turn the cap off.
   * Default: half of `pool.max`, rounded up, at least 2 (5 of the default 10; none for a pool of 2).
   */
  maxConnectionsPerTenant?: number;
  /**
   * When change notifications cannot arrive (LISTEN through a transaction-mode pooler, detected
   * at start-up), the registry is reloaded this often instead. Default: `1_000` ms.
   */
  pollIntervalMs?: number;
  /**
   * Citus schema-based sharding: whether each new tenant schema is created as a distributed
   * schema, placed whole on one worker (see {@link CitusMode}). The registry always stays a
   * local schema on the coordinator. `'auto'` detects the `citus` extension (12+) and its
   * workers once, when the first tenant is created. Default: `'auto'`.
   */
  citus?: CitusMode;
  /**
   * The pooled tier: small tenants share the tables of one schema, made from the same tenant
   * migration files and held to each tenant by row-level security (see the tiers guide).
   * `true` or `{ schema, role }` turns it on; then `create(id, { tier: 'pooled' })` places a
   * tenant there and `moveTier()` moves one between tiers. Default: off.
   */
  pooled?: boolean | PooledTierOptions;
}

/** `TenancyOptions` with defaults filled in. */
export interface ResolvedTenancyOptions {
  readonly migrations: string | undefined;
  readonly schemaPrefix: string;
  readonly resolver: TenantResolver;
  readonly authorize: TenantAuthorizer | undefined;
  readonly registrySchema: string;
  readonly idPattern: RegExp;
  readonly migrationConcurrency: number;
  readonly failOnMigrationError: boolean;
  readonly template: boolean;
  readonly templateSpares: number;
  readonly required: boolean;
  readonly interceptor: boolean;
  readonly negativeCacheMs: number;
  readonly maxStalenessMs: number;
  readonly pollIntervalMs: number;
  /** `undefined`: half of `pool.max`, resolved with the pool options. */
  readonly maxConnectionsPerTenant: number | undefined;
  readonly citus: CitusMode;
  /** `undefined`: the pooled tier is off. */
  readonly pooled: ResolvedPooledTier | undefined;
}

/** Defaults of the tenancy options that are numbers. */
const TENANCY_TIMING_DEFAULTS = Object.freeze({
  negativeCacheMs: 5_000,
  maxStalenessMs: 5_000,
  pollIntervalMs: 1_000,
});

/** `NOTIFY` channel names are identifiers: at most 63 bytes. */
const CHANNEL_PREFIX = 'pg_tenancy_';

/** `tenancy.citus`: `'auto'`, or a boolean (also as the strings `"true"`/`"false"`). */
function citusOption(value: unknown): CitusMode {
  if (typeof value === 'string' && value.trim().toLowerCase() === 'auto') return 'auto';
  if (
    typeof value === 'boolean' ||
    (typeof value === 'string' && /^\s*(true|false)\s*$/i.test(value))
  )
    return booleanOption(value, 'tenancy.citus');
  throw new InvalidOptionsError(
    `tenancy.citus must be "auto", true or false, received ${describeValue(value)}.`,
  );
}

/**
 * Fills in defaults and checks every value once, at start-up; numbers and booleans given as
 * strings (`"4"`, `"false"`) are read as what they say.
 *
 * @throws InvalidOptionsError
 */
export function resolveTenancyOptions(options: TenancyOptions): ResolvedTenancyOptions {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionsError(
      `tenancy must be an object of options, received ${describeValue(options)}.`,
    );
  }
  const optional = <T>(value: T | undefined, fallback: T, read: (v: unknown) => T): T =>
    value === undefined ? fallback : read(value);
  const resolved: ResolvedTenancyOptions = {
    migrations: options.migrations,
    schemaPrefix: options.schemaPrefix ?? 'tenant_',
    resolver: options.resolver ?? fromHeader('x-tenant-id'),
    authorize: options.authorize,
    registrySchema: options.registrySchema ?? 'tenancy',
    idPattern: options.idPattern ?? /^[a-z0-9][a-z0-9_]{0,39}$/,
    migrationConcurrency: optional(options.migrationConcurrency, 4, (v) =>
      integerOption(v, 'tenancy.migrationConcurrency', 1),
    ),
    failOnMigrationError: optional(options.failOnMigrationError, true, (v) =>
      booleanOption(v, 'tenancy.failOnMigrationError'),
    ),
    template: optional(options.template, true, (v) => booleanOption(v, 'tenancy.template')),
    templateSpares: optional(options.templateSpares, 2, (v) =>
      integerOption(v, 'tenancy.templateSpares'),
    ),
    required: optional(options.required, true, (v) => booleanOption(v, 'tenancy.required')),
    interceptor: optional(options.interceptor, true, (v) =>
      booleanOption(v, 'tenancy.interceptor'),
    ),
    negativeCacheMs: optional(
      options.negativeCacheMs,
      TENANCY_TIMING_DEFAULTS.negativeCacheMs,
      (v) => integerOption(v, 'tenancy.negativeCacheMs'),
    ),
    pollIntervalMs: optional(options.pollIntervalMs, TENANCY_TIMING_DEFAULTS.pollIntervalMs, (v) =>
      integerOption(v, 'tenancy.pollIntervalMs', 100),
    ),
    maxConnectionsPerTenant: optional<number | undefined>(
      options.maxConnectionsPerTenant,
      undefined,
      (v) => integerOption(v, 'tenancy.maxConnectionsPerTenant', 1),
    ),
    maxStalenessMs: optional(options.maxStalenessMs, TENANCY_TIMING_DEFAULTS.maxStalenessMs, (v) =>
      integerOption(v, 'tenancy.maxStalenessMs', 100),
    ),
    citus: optional<CitusMode>(options.citus, 'auto', citusOption),
    pooled: resolvePooledTier(options.pooled),
  };
  assertIdentifier(resolved.registrySchema, 'registry schema');
  if (resolved.registrySchema.startsWith('pg_')) {
    throw new InvalidOptionsError(
      `tenancy.registrySchema ${JSON.stringify(resolved.registrySchema)} starts with "pg_", which PostgreSQL reserves for system schemas: choose another name.`,
    );
  }
  const channelBytes = Buffer.byteLength(CHANNEL_PREFIX + resolved.registrySchema);
  if (channelBytes > MAX_IDENTIFIER_BYTES) {
    throw new InvalidOptionsError(
      `tenancy.registrySchema ${JSON.stringify(resolved.registrySchema)} is too long: its change notification channel "${CHANNEL_PREFIX}${resolved.registrySchema}" would be ${channelBytes} bytes, and PostgreSQL allows ${MAX_IDENTIFIER_BYTES}. ` +
        `Use a registry schema name of at most ${MAX_IDENTIFIER_BYTES - CHANNEL_PREFIX.length} bytes.`,
    );
  }
  if (typeof resolved.schemaPrefix !== 'string') {
    throw new InvalidOptionsError(
      `tenancy.schemaPrefix must be a string, received ${describeValue(resolved.schemaPrefix)}.`,
    );
  }
  if (resolved.schemaPrefix !== '' && !/^[A-Za-z_][A-Za-z0-9_$]*$/.test(resolved.schemaPrefix)) {
    throw new InvalidOptionsError(
      `tenancy.schemaPrefix ${JSON.stringify(resolved.schemaPrefix)} must start with a letter or "_" and contain only letters, digits, "_" or "$".`,
    );
  }
  if (resolved.schemaPrefix.startsWith('pg_')) {
    throw new InvalidOptionsError(
      `tenancy.schemaPrefix ${JSON.stringify(resolved.schemaPrefix)} makes every tenant schema start with "pg_", which PostgreSQL reserves for system schemas, so every create() would fail: choose another prefix.`,
    );
  }
  if (Buffer.byteLength(resolved.schemaPrefix) >= MAX_IDENTIFIER_BYTES) {
    throw new InvalidOptionsError(
      'tenancy.schemaPrefix leaves no room for the tenant id within 63 bytes.',
    );
  }
  if (!(resolved.idPattern instanceof RegExp)) {
    throw new InvalidOptionsError(
      `tenancy.idPattern must be a RegExp, received ${describeValue(resolved.idPattern)}.`,
    );
  }
  if (resolved.idPattern.global || resolved.idPattern.sticky) {
    throw new InvalidOptionsError(
      `tenancy.idPattern ${String(resolved.idPattern)} has the "g" or "y" flag: such a RegExp remembers where its last match ended (lastIndex), so the same id would be accepted and refused in turn. Remove the flag.`,
    );
  }
  if (typeof resolved.resolver !== 'function') {
    throw new InvalidOptionsError(
      'tenancy.resolver must be a function, e.g. fromHeader("x-tenant-id").',
    );
  }
  if (resolved.authorize !== undefined && typeof resolved.authorize !== 'function') {
    throw new InvalidOptionsError(
      `tenancy.authorize must be a function (tenantId, context, moduleRef) => boolean, received ${describeValue(resolved.authorize)}.`,
    );
  }
  return Object.freeze(resolved);
}
