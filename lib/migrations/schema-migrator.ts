import { Logger, type OnModuleInit } from '@nestjs/common';
import type { DatabaseModuleOptions } from '../module/database-options.interface.js';
import { toPgPoolConfig } from '../pool/pool-options.js';
import { MigrationRunner } from './migration-runner.js';

/** A schema and its migrations folder, in the order they are applied. */
export interface SchemaMigrationSource {
  readonly schema: string;
  readonly migrations: string;
}

/**
 * Applies pending migrations of the given schemas, in order, when the module initialises (before
 * the app listens). A failure rejects `app.init()`, so a half-migrated app never serves.
 */
export class SchemaMigrator implements OnModuleInit {
  readonly #logger = new Logger('Migrations');

  constructor(
    private readonly options: DatabaseModuleOptions,
    private readonly sources: readonly SchemaMigrationSource[],
  ) {}

  async onModuleInit(): Promise<void> {
    if (this.options.migrateOnStartup === false || this.sources.length === 0) return;
    // From the options, not pool.options: pg-pool hides the password there (non-enumerable).
    const runner = new MigrationRunner(toPgPoolConfig(this.options), {
      statementTimeoutMs: this.options.migrationStatementTimeoutMs,
      logger: this.#logger,
    });
    for (const { schema, migrations } of this.sources) {
      const result = await runner.migrate(schema, migrations);
      if (result.applied.length === 0) this.#logger.log(`Schema ${schema} is up to date`);
    }
  }
}
