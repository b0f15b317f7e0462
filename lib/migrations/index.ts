/**
 * `nestjs-pg-tenancy/migrations` — **stable.** The migration runner on its own (outside the
 * module, e.g. in a deploy script), the migration-file reader, and every migration error.
 * The module runs migrations for you at start-up; most apps never import this.
 *
 * @module migrations
 */
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
} from './migration-runner.js';
export { loadMigrationFiles, type MigrationFile } from './migration-files.js';
export {
  MigrationChecksumError,
  MigrationFailedError,
  MigrationFilesError,
  MigrationFilesMissingError,
  MigrationLockTimeoutError,
  MigrationTransactionControlError,
  type MigrationLockHolder,
} from './migration.errors.js';
