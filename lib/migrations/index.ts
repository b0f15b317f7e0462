/**
 * `nestjs-pg-tenancy/migrations` — **stable.** The migration runner on its own (outside the
 * module, e.g. in a deploy script), the migration-file reader, and every migration error.
 * The module runs migrations for you at start-up; most apps never import this.
 *
 * @module migrations
 */
export { MigrationRunner } from './migration-runner.js';
export type {
  AppliedMigration,
  MigrateOptions,
  MigrationConnection,
  MigrationResult,
  MigrationRunnerOptions,
  MigrationSession,
  MigrationStatus,
  PlannedMigration,
} from './migration-types.js';
export { MIGRATIONS_TABLE } from './migration-history.js';
export { DEFAULT_MIGRATION_LOCK_TIMEOUT_MS } from './migration-lock.js';
export { loadMigrationFiles, type MigrationFile, type MigrationSource } from './migration-files.js';
export {
  MigrationChecksumError,
  MigrationFailedError,
  MigrationFilesError,
  MigrationFilesMissingError,
  MigrationLockTimeoutError,
  MigrationSchemaMissingError,
  MigrationTransactionControlError,
  type MigrationLockHolder,
} from './migration.errors.js';
