import type {
  ObservabilityOptions,
  ShutdownOptions,
} from '../observability/observability-options.js';
import type { ConnectionSettings } from '../connection/pool-options.js';
import type { PreparedStatementOptions } from '../connection/statement-cache-options.js';
import type { ReplicaOptions } from '../connection/replicas/replica-options.js';
import type { TenancyOptions } from '../tenancy/tenancy-options.js';

/** Options of one named schema. */
export interface SchemaOptions {
  /**
   * Folder of `NNN_description.sql` migrations for this schema, relative to the working
   * directory. Default: none (the schema is not migrated).
   *
   * @example schemas: { orders: { migrations: 'migrations/orders' } }
   */
  migrations?: string;
}

/**
 * Options of `DatabaseModule.forRoot()`, or what the `useFactory` of `forRootAsync()` returns:
 * where to connect, how big the pool is, and whether to migrate at start-up.
 */
export interface DatabaseModuleOptions extends ConnectionSettings, ObservabilityOptions {
  /** Graceful shutdown. */
  shutdown?: ShutdownOptions;
  /**
   * Managed prepared statements: every pooled connection keeps its most recently used
   * statements (those with bind parameters) parsed and planned, up to `maxPerConnection`, so a
   * repeated query skips parsing and planning. `'auto'` turns them off when a pooler is
   * detected in front of PostgreSQL. `true`/`false`/`'auto'` stand for `{ enabled }`.
   * Default: `{ enabled: 'auto', maxPerConnection: 1_000, inTransactions: false }`.
   *
   * @example preparedStatements: { maxPerConnection: 200 }
   */
  preparedStatements?: boolean | 'auto' | PreparedStatementOptions;
  /**
   * Streaming read replicas for `db.replica()` reads. Writes, transactions, the tenant registry
   * and migrations always use `connection`. Default: none (`db.replica()` reads the primary).
   *
   * @example replicas: { connections: [process.env.REPLICA_URL!], maxLagMs: 2_000 }
   */
  replicas?: ReplicaOptions;
  /**
   * Apply pending migrations of every schema with a `migrations` folder during `onModuleInit`,
   * before the app serves; a failure stops start-up. Set `false` when a deploy step runs
   * `npx nestjs-pg-tenancy migrate` instead. Default: `true`.
   */
  migrateOnStartup?: boolean;
  /**
   * `statement_timeout` for migration statements, on their own connection; `0` means none.
   * Default: `0`.
   */
  migrationStatementTimeoutMs?: number;
  /**
   * Longest wait for a schema's migration lock, held by another instance that is migrating the
   * same schema, before start-up (or the CLI) fails with `MigrationLockTimeoutError` naming the
   * holder (pid, `application_name`, since when). `0` waits forever. Default: `300_000` (5 min).
   */
  migrationLockTimeoutMs?: number;
  /**
   * What start-up does when a schema's history records migrations whose files are no longer in
   * its folder (deleted, or an older checkout deployed): `'warn'` logs them and starts, `'fail'`
   * stops start-up with `MigrationFilesMissingError` (named schemas, before anything is applied)
   * or `TenantMigrationsFailedError` (tenants). `migrate --status` and the fleet view report them
   * either way. Default: `'warn'`.
   */
  missingMigrations?: 'warn' | 'fail';
}

/**
 * Options that shape the module graph, so they are given directly to `forRoot()` /
 * `forRootAsync()` and never come from an async factory.
 */
export interface DatabaseModuleExtras {
  /** Register the module globally, so every module can inject the pool and managers. Default: `true`. */
  isGlobal: boolean;
  /**
   * Named schemas: each gets a `SchemaDb` injectable with `@InjectSchemaDb(name)`. Names must be
   * valid identifiers (letters, digits, `_`, `$`; at most 63 bytes). Default: `{}`.
   *
   * @example schemas: { users: {}, orders: {} }
   */
  schemas: Record<string, SchemaOptions>;
  /**
   * Schema-per-tenant: a tenant registry, `TenantService`, `@InjectTenantDb()` and a global
   * `TenantInterceptor`. Default: off.
   *
   * @example tenancy: { migrations: 'migrations/tenant', resolver: fromHeader('x-tenant-id') }
   */
  tenancy?: TenancyOptions;
}

/**
 * A class usable with `forRootAsync({ useClass })` or `useExisting`: Nest instantiates it with
 * its own dependencies and calls `createDatabaseOptions()`.
 */
export interface DatabaseOptionsFactory {
  /** Returns the connection, pool and runtime options (not `schemas` or `isGlobal`). */
  createDatabaseOptions(): DatabaseModuleOptions | Promise<DatabaseModuleOptions>;
}
