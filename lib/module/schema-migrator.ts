import { Logger, type OnModuleInit } from '@nestjs/common';
import type { DatabaseModuleOptions } from './database-options.interface.js';
import { toSessionConfig } from '../connection/pool-options.js';
import { MigrationRunner } from '../migrations/migration-runner.js';

/** A schema and its migrations folder, in the order they are applied. */
export interface SchemaMigrationSource {
  readonly schema: string;
  readonly migrations: string;
}

/**
 * The order of schema migrations at start-up: the root module's named schemas (in declaration
 * order), then each `forFeature` schema (in the order Nest created them), all before any
 * tenant's. The root module holds one in DI (no static state) and its feature migrators join it.
 */
export class MigrationPlan {
  #root: SchemaMigrator | undefined;
  readonly #features: SchemaMigrator[] = [];

  setRoot(migrator: SchemaMigrator): void {
    this.#root = migrator;
  }

  addFeature(migrator: SchemaMigrator): void {
    this.#features.push(migrator);
  }

  /** Runs every migrator not run yet, root first. Safe to call from several hooks. */
  async run(): Promise<void> {
    await this.#root?.run();
    for (const feature of this.#features) await feature.run();
  }
}

/**
 * Applies pending migrations of the given schemas, in order, once. The root module's migrator is
 * run by `DatabaseLifecycle` through the {@link MigrationPlan}, before tenant migrations; a
 * feature module's joins the plan, and its own `onModuleInit` runs the plan too (it may come
 * first, and a module loaded lazily later has no other trigger). Either way it happens before
 * the app listens, and a failure rejects `app.init()`, so a half-migrated app never serves.
 */
export class SchemaMigrator implements OnModuleInit {
  readonly #logger = new Logger('Migrations');
  #done: Promise<void> | undefined;

  constructor(
    private readonly options: DatabaseModuleOptions,
    private readonly sources: readonly SchemaMigrationSource[],
    /** A feature module's migrator: the root's plan, which it has joined. */
    private readonly plan?: MigrationPlan,
  ) {
    plan?.addFeature(this);
  }

  async onModuleInit(): Promise<void> {
    if (this.plan) await this.plan.run();
  }

  /** Applies pending migrations unless `migrateOnStartup` is `false`; only the first call works. */
  run(): Promise<void> {
    return (this.#done ??= this.#run());
  }

  async #run(): Promise<void> {
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
