export {
  SchemaDb,
  type IsolationLevel,
  type TransactionOptions,
  type TransactionPropagation,
} from './core/schema-db.js';
export {
  Transactional,
  type TransactionalOptions,
} from './transactions/transactional.decorator.js';
export type { QueryParams } from './core/query-runner.js';
export { quoteIdentifier, assertIdentifier, MAX_IDENTIFIER_BYTES } from './core/identifiers.js';
export { DatabaseModule, type DatabaseFeatureOptions } from './module/database.module.js';
export { DATABASE_MODULE_OPTIONS } from './module/database.module-definition.js';
export type {
  DatabaseModuleExtras,
  DatabaseModuleOptions,
  DatabaseOptionsFactory,
  SchemaOptions,
} from './module/database-options.interface.js';
export { getPoolToken, getSchemaDbToken } from './module/database.tokens.js';
export { InjectPool, InjectSchemaDb } from './module/inject.decorators.js';
export {
  POOL_DEFAULTS,
  type ConnectionSettings,
  type PoolOptions,
  type ResolvedPoolOptions,
} from './pool/pool-options.js';
export {
  ConcurrentSavepointError,
  DatabaseConnectionError,
  InvalidIdentifierError,
  InvalidOptionsError,
  PgTenancyError,
  PoolAcquireTimeoutError,
  PoolClosedError,
  SavepointActiveError,
  TemplateError,
  TransactionAbortedError,
  TransactionClosedError,
  TransactionalHostMissingError,
  TransactionNotAllowedError,
  TransactionRequiredError,
} from './errors.js';
export {
  MigrationRunner,
  MIGRATIONS_TABLE,
  DEFAULT_MIGRATION_LOCK_TIMEOUT_MS,
  type AppliedMigration,
  type MigrationResult,
  type MigrationRunnerOptions,
  type MigrationSession,
  type MigrationSource,
  type MigrationStatus,
  type PlannedMigration,
} from './migrations/migration-runner.js';
export type { MigrationFile } from './migrations/migration-files.js';
export {
  MigrationChecksumError,
  MigrationFailedError,
  MigrationFilesError,
  MigrationFilesMissingError,
  MigrationLockTimeoutError,
  type MigrationLockHolder,
  MigrationTransactionControlError,
} from './migrations/migration.errors.js';
export type { PgTenancyConfig } from './cli/cli-config.js';
export { getTenantDbToken } from './module/database.tokens.js';
export { InjectTenantDb } from './module/inject.decorators.js';
export type { TenancyOptions, TenantAuthorizer } from './tenancy/tenancy-options.js';
export {
  fromHeader,
  fromPathParam,
  fromQuery,
  fromSubdomain,
  fromUser,
  type TenantResolver,
} from './tenancy/tenant-resolvers.js';
export { NoTenant, NO_TENANT_KEY } from './tenancy/no-tenant.decorator.js';
export { TenantInterceptor } from './tenancy/tenant.interceptor.js';
export { TenantMiddleware } from './tenancy/tenant.middleware.js';
export { TenantContext, type TenantScope } from './tenancy/tenant-context.js';
export {
  TenantRegistry,
  type RegistrySyncState,
  type TenantEntry,
  type TenantInfo,
} from './tenancy/tenant-registry.js';
export { TENANT_STATUSES, TENANT_TRANSITIONS, type TenantStatus } from './tenancy/tenant-state.js';
export { RegistryMissingError } from './tenancy/tenant-registry-store.js';
export {
  TenantService,
  type ForEachOptions,
  type MigrateAllOptions,
  type TenantMigrationProgress,
  type TenantMigrationState,
  type TenantMigrationSummary,
  type TenantRepairResult,
} from './tenancy/tenant.service.js';
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
export { DatabaseShuttingDownError } from './errors.js';
export { DrainController, type DrainReport } from './lifecycle/drain-controller.js';
export { DatabaseDrainInterceptor } from './lifecycle/database-drain.interceptor.js';
export {
  DatabaseMonitor,
  type PingResult,
  type TenantSyncStatus,
} from './observability/database-monitor.js';
export { DatabaseExceptionFilter } from './observability/database-exception.filter.js';
export type { PoolStats } from './observability/metrics.js';
export type { SlowQuery } from './observability/query-observer.js';
export type { QueryEvent, QueryListener } from './observability/query-event.js';
export type {
  MetricsOptions,
  ObservabilityOptions,
  ShutdownOptions,
} from './observability/observability-options.js';
