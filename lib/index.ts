// Core: the schema-qualified manager, its query parameters and identifier helpers.
export { SchemaDb, type SchemaDbCreateOptions } from './core/schema-db.js';
export type { QueryParams } from './core/query/query-runner.js';
export { quoteIdentifier, assertIdentifier, MAX_IDENTIFIER_BYTES } from './shared/identifiers.js';

// Bulk load and streaming reads: SchemaDb.copyFrom(), insertMany(), stream() and their types.
export type {
  BulkRow,
  BulkRowSource,
  InsertManyOptions,
  OnConflict,
} from './core/bulk/bulk-load.js';
export { BulkLoadColumnsError, BulkLoadRowError } from './core/bulk/bulk-load.errors.js';
export type { StreamOptions } from './core/bulk/result-stream.js';

// Module & injection: forRoot/forFeature, their options, tokens and decorators.
export { DatabaseModule, type DatabaseFeatureOptions } from './module/database.module.js';
export type {
  DatabaseModuleExtras,
  DatabaseModuleOptions,
  DatabaseOptionsFactory,
  SchemaOptions,
} from './module/database-options.interface.js';
export type { PgTenancyConfig } from './cli/cli-config.js';
export {
  DATABASE_MODULE_OPTIONS,
  getPoolToken,
  getSchemaDbToken,
  getTenantDbToken,
} from './module/database.tokens.js';
export { InjectPool, InjectSchemaDb, InjectTenantDb } from './module/inject.decorators.js';

// Pool: connection settings, sizing and timeouts, their defaults, and the per-tenant share.
export {
  POOL_DEFAULTS,
  type ConnectionSettings,
  type PoolOptions,
  type ResolvedPoolOptions,
} from './connection/pool-options.js';
export { TenantShareTimeoutError } from './connection/tenant-fair-share.js';

// Prepared statements: the managed per-connection statement cache, its options and counters.
export {
  PREPARED_STATEMENT_DEFAULTS,
  type PreparedStatementOptions,
  type ResolvedPreparedStatementOptions,
  type StatementCacheStats,
} from './connection/statement-cache.js';
// Read replicas: options, each replica's health, and their errors.
export {
  REPLICA_DEFAULTS,
  type ReadYourWritesMode,
  type ReplicaDefaults,
  type ReplicaOptions,
} from './connection/replicas/replica-options.js';
export type { ReplicaState, ReplicaStatus } from './connection/replicas/replica-health.js';
export { NoHealthyReplicaError, ReplicaWriteError } from './connection/replicas/replica.errors.js';

// Errors: the base class and the manager's, pool's, transactions' and shutdown's errors.
export {
  ConcurrentSavepointError,
  DatabaseConnectionError,
  DatabaseShuttingDownError,
  InvalidIdentifierError,
  InvalidOptionsError,
  PgTenancyError,
  PoolAcquireTimeoutError,
  PoolClosedError,
  PreparedStatementStaleError,
  SavepointActiveError,
  TemplateError,
  TransactionAbortedError,
  TransactionClosedError,
  TransactionalHostMissingError,
  TransactionNotAllowedError,
  TransactionRequiredError,
} from './shared/errors.js';

// Migrations: the runner, its results, the folder reader and the migration errors.
export {
  MigrationRunner,
  MigrationSchemaMissingError,
  MIGRATIONS_TABLE,
  DEFAULT_MIGRATION_LOCK_TIMEOUT_MS,
  type AppliedMigration,
  type MigrateOptions,
  type MigrationResult,
  type MigrationRunnerOptions,
  type MigrationSession,
  type MigrationSource,
  type MigrationStatus,
  type PlannedMigration,
} from './migrations/migration-runner.js';
export { loadMigrationFiles, type MigrationFile } from './migrations/migration-files.js';
export {
  MigrationChecksumError,
  MigrationFailedError,
  MigrationFilesError,
  MigrationFilesMissingError,
  MigrationLockTimeoutError,
  MigrationTransactionControlError,
  type MigrationLockHolder,
} from './migrations/migration.errors.js';

// Tenancy, routing: options, resolvers, the interceptor and middleware mounts, the current tenant.
export type { TenancyOptions, TenantAuthorizer } from './tenancy/tenancy-options.js';
export {
  fromHeader,
  fromPathParam,
  fromQuery,
  fromSubdomain,
  fromUser,
  type TenantResolver,
} from './tenancy/routing/tenant-resolvers.js';
export { NoTenant, NO_TENANT_KEY } from './module/no-tenant.decorator.js';
export { TenantInterceptor } from './module/tenant.interceptor.js';
export { TenantMiddleware } from './module/tenant.middleware.js';
export { TenantContext, type TenantScope } from './tenancy/routing/tenant-context.js';

// Tenancy, service: provisioning, scoped execution and fleet migrations.
export {
  TenantService,
  type ForEachOptions,
  type MigrateAllOptions,
  type TenantMigrationProgress,
  type TenantMigrationState,
  type TenantMigrationSummary,
  type TenantRepairResult,
} from './tenancy/tenant.service.js';

// Tenancy, fleet rollouts: waves, canaries and the rollout record of migrateAll().
export type {
  MigrationRolloutState,
  MigrationRolloutStop,
  MigrationWaveOptions,
  MigrationWaveSummary,
  TenantRolloutOutcome,
} from './tenancy/fleet/tenant-waves.js';

// Tenancy, copies: clone, rename, export and import of a tenant, and the export format.
export type { CloneTenantOptions, TenantCopyProgress } from './tenancy/transfer/tenant-copy.js';
export {
  TENANT_EXPORT_FORMAT,
  TENANT_EXPORT_FORMAT_VERSION,
  type ExportTenantOptions,
  type ImportTenantOptions,
  type TenantExportManifest,
  type TenantExportResult,
} from './tenancy/transfer/tenant-export.js';
export type { MigrationHistoryEntry, SequencePosition } from './catalog/tenant-schema-catalog.js';
export {
  TenantCloneError,
  TenantExportError,
  TenantImportError,
  TenantRenameError,
} from './tenancy/transfer/tenant-copy.errors.js';

// Tenancy, Citus: schema-based sharding, placements and moves (TenantService.placements/move).
export type {
  CitusMode,
  MoveTenantOptions,
  TenantMoveProgress,
  TenantPlacement,
} from './tenancy/citus/citus.js';
export {
  CitusMigrationError,
  CitusUnavailableError,
  TenantPlacementError,
} from './tenancy/citus/citus.errors.js';

// Tenancy, registry types: a tenant's row and lifecycle states. TenantRegistry is advanced API.
export {
  TenantRegistry,
  type RegistrySyncState,
  type TenantEntry,
  type TenantInfo,
} from './tenancy/registry/tenant-registry.js';
export { TENANT_STATUSES, TENANT_TRANSITIONS, type TenantStatus } from './tenancy/tenant-state.js';

// Tenancy, errors: each carries the HTTP status a request gets.
export {
  InvalidTenantIdError,
  TenantAccessDeniedError,
  TenantAlreadyExistsError,
  TenantContextMissingError,
  TenantCreationError,
  TenantError,
  TenantMigrationsFailedError,
  TenantNotFoundError,
  TenantRequiredError,
  TenantSuspendedError,
} from './tenancy/tenant.errors.js';
export { RegistryMissingError } from './tenancy/registry/tenant-registry-store.js';

// Transactions: options of SchemaDb.transaction() and the @Transactional() decorator.
export type {
  IsolationLevel,
  TransactionOptions,
  TransactionPropagation,
} from './core/transaction/transaction-options.js';
export {
  Transactional,
  type TransactionalOptions,
} from './transactions/transactional.decorator.js';

// Lifecycle & observability: shutdown drain (advanced API), monitor, error filter, query hooks.
export { DrainController, type DrainReport } from './connection/drain-controller.js';
export { DatabaseDrainInterceptor } from './module/database-drain.interceptor.js';
export {
  DatabaseMonitor,
  type PingResult,
  type TenantSyncStatus,
} from './observability/database-monitor.js';
export { DatabaseExceptionFilter } from './module/database-exception.filter.js';
export type { PoolStats } from './observability/pool-stats.js';
export type { SlowQuery } from './observability/query-observer.js';
export type { QueryEvent, QueryListener } from './core/query/query-event.js';
export type {
  MetricsOptions,
  ObservabilityOptions,
  ShutdownOptions,
} from './observability/observability-options.js';
