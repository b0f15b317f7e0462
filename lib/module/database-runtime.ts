import { Logger } from '@nestjs/common';
import type pg from 'pg';
import type { QueryEnvironment } from '../core/query/query-environment.js';
import { SqlTemplateCache } from '../core/sql/sql-template.js';
import { InvalidOptionsError } from '../shared/errors.js';
import { DrainController } from '../connection/drain-controller.js';
import { DatabaseMonitor, type TenantSyncSource } from '../observability/database-monitor.js';
import { createMetrics } from '../observability/metrics/create-metrics.js';
import { SchemaLabels } from '../observability/metrics/metric-labels.js';
import { QueryObserver } from '../observability/query-observer.js';
import { createPool } from '../connection/create-pool.js';
import { resolvePoolOptions, toPgPoolConfig, toSessionConfig } from '../connection/pool-options.js';
import { StatementCache } from '../connection/statement-cache.js';
import { resolvePreparedStatementOptions } from '../connection/statement-cache-options.js';
import { resolveReplicaOptions } from '../connection/replicas/replica-options.js';
import { ReplicaSet } from '../core/query/replica-set.js';
import { TenantFairShare } from '../connection/tenant-fair-share.js';
import type { TenantContext } from '../tenancy/routing/tenant-context.js';
import type { DatabaseModuleOptions } from './database-options.interface.js';

/** Everything one application's managers share, built once from the options. */
export interface DatabaseRuntime extends QueryEnvironment {
  readonly pool: pg.Pool;
  readonly drain: DrainController;
  /** The streaming replicas, when `replicas.connections` names any. */
  readonly replicas?: ReplicaSet;
  readonly observer: QueryObserver;
  readonly monitor: DatabaseMonitor;
  /** Filled in by the tenant registry, read by the monitor and the metrics. */
  readonly tenantSync: TenantSyncSource;
  /** The pool's connection settings, with the password (pg-pool hides it in `pool.options`). */
  readonly connection: pg.ClientConfig;
  /** Settings for sessions of their own (migrations, LISTEN): `directConnection` or the pool's. */
  readonly sessionConnection: pg.ClientConfig;
  readonly drainTimeoutMs: number;
  /**
   * Names of the schemas served by named managers (root `schemas` and `forFeature`), added as
   * their providers are built. Metrics label these by name and every other schema as one value.
   */
  readonly namedSchemas: Set<string>;
}

/** What the runtime needs to know about the module's structure. */
export interface RuntimeStructure {
  /** `tenancy.schemaPrefix`, when tenancy is configured. */
  readonly tenantSchemaPrefix?: string;
  /** `tenancy.pooled.schema`, when the pooled tier is on. */
  readonly pooledSchema?: string;
  /** Whether tenancy is configured, and its `maxConnectionsPerTenant` (`undefined`: the default). */
  readonly tenantShare?: { readonly maxConnectionsPerTenant: number | undefined };
}

/** Defaults of the observability and shutdown options. */
const RUNTIME_DEFAULTS = Object.freeze({
  slowQueryMs: 1_000,
  slowQueryLimit: 100,
  logQueryParams: false,
  drainTimeoutMs: 10_000,
});

function nonNegativeInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 0) {
    throw new InvalidOptionsError(
      `${name} must be a non-negative integer, received ${String(value)}.`,
    );
  }
  return value;
}

/** Builds the pool, shutdown gate, observer (with any metrics exporters) and monitor. */
export async function createDatabaseRuntime(
  options: DatabaseModuleOptions,
  context: TenantContext,
  structure: RuntimeStructure = {},
): Promise<DatabaseRuntime> {
  const connection = toPgPoolConfig(options);
  const slowQueryMs = nonNegativeInteger(
    options.slowQueryMs ?? RUNTIME_DEFAULTS.slowQueryMs,
    'slowQueryMs',
  );
  const slowQueryLimit = nonNegativeInteger(
    options.slowQueryLimit ?? RUNTIME_DEFAULTS.slowQueryLimit,
    'slowQueryLimit',
  );
  const drainTimeoutMs = nonNegativeInteger(
    options.shutdown?.drainTimeoutMs ?? RUNTIME_DEFAULTS.drainTimeoutMs,
    'shutdown.drainTimeoutMs',
  );
  const listeners = options.onQuery === undefined ? [] : [options.onQuery].flat();
  if (listeners.some((l) => typeof l !== 'function')) {
    throw new InvalidOptionsError('onQuery must be a function or an array of functions.');
  }
  const pool = createPool(options);
  let replicas: ReplicaSet | undefined;
  try {
    const namedSchemas = new Set<string>();
    const tenantSync: TenantSyncSource = {};
    const prepared = resolvePreparedStatementOptions(options.preparedStatements);
    const statements = prepared.enabled === false ? undefined : new StatementCache(prepared, pool);
    const replicaOptions = options.replicas && resolveReplicaOptions(options.replicas);
    const withReplicas = replicaOptions !== undefined && replicaOptions.connections.length > 0;
    // Every admitted request or job is a read-your-writes context of the replica set.
    const drain = new DrainController(
      connection,
      withReplicas ? (fn) => replicas!.scope(fn) : undefined,
    );
    if (withReplicas) replicas = new ReplicaSet(pool, options, replicaOptions, drain);
    const metrics = await createMetrics(
      options.metrics,
      pool,
      new SchemaLabels(namedSchemas, structure.tenantSchemaPrefix, structure.pooledSchema),
      tenantSync,
      statements,
      replicas,
    );
    const observer = new QueryObserver({
      listeners,
      slowQueryMs,
      slowQueryLimit,
      logQueryParams: options.logQueryParams ?? RUNTIME_DEFAULTS.logQueryParams,
      metrics,
      logger: new Logger('Database'),
      context,
    });
    const fairShare = createTenantFairShare(options, context, structure);
    const needsSink = listeners.length > 0 || slowQueryMs > 0 || metrics.length > 0;
    return {
      pool,
      drain,
      ...(replicas ? { replicas } : {}),
      observer,
      ...(needsSink ? { sink: observer } : {}),
      ...(fairShare ? { fairShare } : {}),
      monitor: new DatabaseMonitor(pool, observer, drain, tenantSync, statements, replicas),
      tenantSync,
      sqlTemplates: new SqlTemplateCache(),
      ...(statements ? { statements } : {}),
      connection,
      sessionConnection: toSessionConfig(options),
      drainTimeoutMs,
      namedSchemas,
    };
  } catch (err) {
    await replicas?.close();
    await pool.end().catch(() => undefined);
    throw err;
  }
}

/**
 * The per-tenant cap, when tenancy is configured and the share is smaller than the pool: half
 * of `pool.max` (rounded up, at least 2) unless `tenancy.maxConnectionsPerTenant` says otherwise.
 */
function createTenantFairShare(
  options: DatabaseModuleOptions,
  context: TenantContext,
  structure: RuntimeStructure,
): TenantFairShare | undefined {
  if (structure.tenantShare === undefined) return undefined;
  const pool = resolvePoolOptions(options.pool);
  const maxPerTenant =
    structure.tenantShare.maxConnectionsPerTenant ?? defaultTenantShare(pool.max);
  if (maxPerTenant >= pool.max) return undefined;
  return new TenantFairShare({
    maxPerTenant,
    acquireTimeoutMs: pool.acquireTimeoutMs,
    poolMax: pool.max,
    tenantOf: () => context.current?.tenantId,
  });
}

/**
 * Half the pool, rounded up, and never below 2: a share of 1 would deadlock a tenant's
 * transaction that needs a second connection (`requires-new`, `not-supported`) until the
 * acquire timeout.
 */
function defaultTenantShare(poolMax: number): number {
  return Math.max(2, Math.ceil(poolMax / 2));
}
