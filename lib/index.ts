/**
 * The stable API a Nest app uses: the module and its options, the schema manager, tenant routing
 * and the tenant service, transactions, and the errors a request or a service can meet.
 * Everything else lives on a subpath, each with its stability stated at its top:
 * `/migrations`, `/tenancy`, `/observability`, `/advanced`, `/testing`, `/terminus`, `/kysely`.
 *
 * @module nestjs-pg-tenancy
 */

// The schema-qualified manager: queries, bulk loads, streams, and identifier quoting.
export { SchemaDb, type SchemaDbCreateOptions } from './core/schema-db.js';
export type { QueryParams } from './core/query/query-runner.js';
export { quoteIdentifier } from './shared/identifiers.js';
export type {
  BulkRow,
  BulkRowSource,
  InsertManyOptions,
  OnConflict,
} from './core/bulk/bulk-load.js';
export type { StreamOptions } from './core/bulk/result-stream.js';

// The module: forRoot/forRootAsync/forFeature, their options, tokens and decorators.
export { DatabaseModule, type DatabaseFeatureOptions } from './module/database.module.js';
export type {
  DatabaseModuleExtras,
  DatabaseModuleOptions,
  DatabaseOptionsFactory,
  SchemaOptions,
} from './module/database-options.interface.js';
export {
  DATABASE_MODULE_OPTIONS,
  getPoolToken,
  getSchemaDbToken,
  getTenantDbToken,
} from './module/database.tokens.js';
export { InjectPool, InjectSchemaDb, InjectTenantDb } from './module/inject.decorators.js';
export { DatabaseExceptionFilter } from './module/database-exception.filter.js';
export type { ConnectionSettings, PoolOptions } from './connection/pool-options.js';
export type { PreparedStatementOptions } from './connection/statement-cache-options.js';
export type { ReadYourWritesMode, ReplicaOptions } from './connection/replicas/replica-options.js';
export type { ShutdownOptions } from './observability/observability-options.js';
export type { PgTenancyConfig } from './cli/cli-config.js';

// Tenancy: options, resolvers, the interceptor and middleware mounts, the current tenant, and
// the service that creates, runs in and migrates tenants.
export type { TenancyOptions, TenantAuthorizer } from './tenancy/tenancy-options.js';
export {
  fromHeader,
  fromPathParam,
  fromQuery,
  fromSubdomain,
  fromUser,
  type TenantResolver,
} from './tenancy/routing/tenant-resolvers.js';
export { NoTenant } from './module/no-tenant.decorator.js';
export { TenantInterceptor } from './module/tenant.interceptor.js';
export { TenantMiddleware } from './module/tenant.middleware.js';
export { TenantAdmission, type TenantAdmissionOptions } from './module/tenant-admission.js';
export { TenantContext, type TenantScope } from './tenancy/routing/tenant-context.js';
export { TenantService, type ForEachOptions } from './tenancy/tenant.service.js';
export type { TenantInfo } from './tenancy/registry/tenant-info.js';
export type { TenantStatus } from './tenancy/tenant-state.js';

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

// Errors: the base class, and those a request or a service meets. Each carries its HTTP status.
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
  TenantMovedError,
  SavepointActiveError,
  SqlTemplateError,
  TemplateError,
  TransactionAbortedError,
  TransactionClosedError,
  TransactionalHostMissingError,
  TransactionNotAllowedError,
  TransactionRequiredError,
} from './shared/errors.js';
export { TenantShareTimeoutError } from './connection/tenant-fair-share.js';
export { BulkLoadColumnsError, BulkLoadRowError } from './core/bulk/bulk-load.errors.js';
export { NoHealthyReplicaError, ReplicaWriteError } from './connection/replicas/replica.errors.js';
export { PooledAdaptationError } from './catalog/pooled-adaptation.errors.js';
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
