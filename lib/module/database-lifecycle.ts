import {
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { endPool } from '../connection/create-pool.js';
import type { MigrationPlan } from './schema-migrator.js';
import type { ResolvedTenancyOptions } from '../tenancy/tenancy-options.js';
import type { TenantRegistry } from '../tenancy/registry/tenant-registry.js';
import { CitusMigrationError } from '../tenancy/citus/citus.errors.js';
import { TenantMigrationsFailedError } from '../tenancy/tenant.errors.js';
import type { TenantService } from '../tenancy/tenant.service.js';
import type { DatabaseModuleOptions } from './database-options.interface.js';
import type { DatabaseRuntime } from './database-runtime.js';

/** Longest wait for the pool's connections to close after the drain. */
const POOL_END_TIMEOUT_MS = 5_000;

/** The tenancy parts the lifecycle drives, when tenancy is configured. */
export interface TenancyParts {
  readonly options: ResolvedTenancyOptions;
  readonly registry: TenantRegistry;
  readonly service: TenantService;
}

/**
 * Start-up and shutdown of the root module, in a fixed order that Nest's concurrent hooks would
 * not guarantee. Start: named schemas' migrations (the root's, then `forFeature` modules'), then
 * the tenant registry (table, listener, load), then tenant migrations. Shutdown: first drain (refuse new work, let in-flight work
 * finish, cancel what outlives `shutdown.drainTimeoutMs`), then the registry's listener, then
 * the pool. Shutdown is idempotent and logs rather than throws, so other modules' hooks still run.
 */
export class DatabaseLifecycle
  implements OnModuleInit, BeforeApplicationShutdown, OnApplicationShutdown
{
  readonly #logger = new Logger('DatabaseModule');
  #draining: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  constructor(
    private readonly runtime: DatabaseRuntime,
    private readonly options: DatabaseModuleOptions,
    private readonly migrations: MigrationPlan,
    private readonly tenancy: TenancyParts | undefined,
  ) {}

  async onModuleInit(): Promise<void> {
    // One check of every replica before the app serves, so the first reads know where to go.
    await this.runtime.replicas?.start();
    await this.migrations.run();
    if (!this.tenancy) return;
    const { registry, service, options } = this.tenancy;
    await registry.start();
    if (this.options.migrateOnStartup === false || !options.migrations) return;
    let summary;
    try {
      summary = await service.migrateAll();
    } catch (err) {
      // A file Citus would refuse, found before any tenant ran it.
      if (!(err instanceof CitusMigrationError) || options.failOnMigrationError) throw err;
      this.#logger.error(`Tenant migrations not run: ${err.message}`);
      return;
    }
    const applied = summary.applied.length;
    this.#logger.log(
      `Tenant migrations: ${applied} tenant(s) migrated, ${summary.skipped} up to date, ${summary.failed.length} failed (${summary.durationMs} ms)` +
        (summary.gone.length > 0 ? `; ${summary.gone.length} skipped as dropped` : '') +
        (summary.pooled && !summary.pooled.error
          ? `; pooled schema ${summary.pooled.schema} (${summary.pooled.tenants} tenant(s)): ${summary.pooled.files.length} file(s) applied`
          : '') +
        (summary.provisioning.length > 0
          ? `; ${summary.provisioning.length} still provisioning (see \`tenants repair\`): ${summary.provisioning.slice(0, 5).join(', ')}`
          : ''),
    );
    for (const failure of summary.failed) {
      this.#logger.error(`Tenant ${failure.tenantId}: ${failure.error}`);
    }
    // One failure for every pooled tenant: logged once, and held to the same policy.
    if (summary.pooled?.error) {
      this.#logger.error(summary.pooled.error.message);
      if (options.failOnMigrationError) throw summary.pooled.error;
    }
    if (summary.failed.length > 0 && options.failOnMigrationError) {
      throw new TenantMigrationsFailedError(summary.failed);
    }
    await this.#reportMissingTenantFiles();
  }

  /** Tenants whose history has more files than the folder: one registry query. */
  async #reportMissingTenantFiles(): Promise<void> {
    const fleet = await this.tenancy!.service.migrationStatus();
    const missing = fleet.filter((t) => t.missing > 0);
    if (missing.length === 0) return;
    const folder = this.tenancy!.options.migrations;
    const examples = missing
      .slice(0, 5)
      .map((t) => `${t.tenantId} (${t.missing})`)
      .join(', ');
    const message = `${missing.length} tenant(s) have applied migrations whose files are missing from ${folder}: ${examples}${missing.length > 5 ? ', …' : ''}`;
    if (this.options.missingMigrations === 'fail') {
      throw new TenantMigrationsFailedError(
        missing.map((t) => ({
          tenantId: t.tenantId,
          error: `${t.missing} applied migration file(s) missing from ${folder}`,
        })),
      );
    }
    this.#logger.warn(
      `${message}. Restore them, or set missingMigrations: 'fail' to refuse to start in this state.`,
    );
  }

  beforeApplicationShutdown(): Promise<void> {
    this.#draining ??= (async () => {
      try {
        const { requests, connections } = this.runtime.drain.busy;
        // drain() refuses new work before its first await, so the line below is true when read.
        const pending = this.runtime.drain.drain(this.runtime.drainTimeoutMs);
        this.#logger.log(
          `Shutting down: refusing new database work; waiting up to ${this.runtime.drainTimeoutMs} ms for ${requests} request(s) and ${connections} connection(s) in flight`,
        );
        const report = await pending;
        if (report.requests + report.connections + report.drained + report.cancelled > 0) {
          this.#logger.log(
            `Shutdown drain finished in ${report.durationMs} ms: ${report.drained} connection(s) drained, ${report.cancelled} cancelled at the timeout (${report.requests} request(s) were in flight)`,
          );
        }
      } catch (err) {
        this.#logger.warn(`Draining database work failed: ${(err as Error).message}`);
      }
    })();
    return this.#draining;
  }

  onApplicationShutdown(): Promise<void> {
    this.#closing ??= (async () => {
      await this.beforeApplicationShutdown();
      await this.tenancy?.registry.close();
      await this.runtime.replicas?.close();
      // Every client must come back and close its socket; one the drain could not reclaim must
      // not keep shutdown waiting for ever.
      const ended = await endPool(this.runtime.pool, POOL_END_TIMEOUT_MS).catch((err: Error) => {
        this.#logger.warn(`Closing the connection pool failed: ${err.message}`);
        return 'ended' as const;
      });
      if (ended === 'late') {
        this.#logger.warn(
          `The connection pool did not close within ${POOL_END_TIMEOUT_MS} ms (a connection still checked out); continuing shutdown.`,
        );
      }
    })();
    return this.#closing;
  }
}
