import { Logger, type OnModuleInit } from '@nestjs/common';
import type { DatabaseModuleOptions } from '../module/database-options.interface.js';
import { toSessionConfig } from '../pool/pool-options.js';
import { MigrationRunner } from './migration-runner.js';

/** A schema and its migrations folder, in the order they are applied. */
export interface SchemaMigrationSource {
  readonly schema: string;
  readonly migrations: string;
}

/**
 * Applies pending migrations of the given schemas, in order. The root module's migrator is run by
 * `DatabaseInitializer` (named schemas first, then tenants); a feature module's runs itself in
 * `onModuleInit`. Either way it happens before the app listens, and a failure rejects
 * `app.init()`, so a half-migrated app never serves.
 */
export class SchemaMigrator implements OnModuleInit {
  readonly #logger = new Logger('Migrations');

  constructor(
    private readonly options: DatabaseModuleOptions,
    private readonly sources: readonly SchemaMigrationSource[],
    private readonly runsItself: boolean,
  ) {}

  async onModuleInit(): Promise<void> {
    if (this.runsItself) await this.run();
  }

  /** Applies pending migrations unless `migrateOnStartup` is `false`. */
  async run(): Promise<void> {
    if (this.options.migrateOnStartup === false || this.sources.length === 0) return;
    // From the options, not pool.options: pg-pool hides the password there (non-enumerable).
    const runner = new MigrationRunner(toSessionConfig(this.options), {
      statementTimeoutMs: this.options.migrationStatementTimeoutMs,
      logger: this.#logger,
      failOnMissingFiles: this.options.missingMigrations === 'fail',
      lockTimeoutMs: this.options.migrationLockTimeoutMs,
    });
    for (const { schema, migrations } of this.sources) {
      const result = await runner.migrate(schema, migrations);
      if (result.missing.length > 0) {
        this.#logger.warn(
          `Schema ${schema} has applied migrations whose files are missing from ${migrations}: ${result.missing.join(', ')}. ` +
            "Restore them, or set missingMigrations: 'fail' to refuse to start in this state.",
        );
      }
      if (result.applied.length === 0) this.#logger.log(`Schema ${schema} is up to date`);
    }
  }
}
