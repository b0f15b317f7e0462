import {
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import type { MigrationPlan } from '../migrations/schema-migrator.js';
import type { ResolvedTenancyOptions } from '../tenancy/tenancy-options.js';
import type { TenantRegistry } from '../tenancy/tenant-registry.js';
import { TenantMigrationsFailedError } from '../tenancy/tenant.errors.js';
import type { TenantService } from '../tenancy/tenant.service.js';
import type { DatabaseModuleOptions } from './database-options.interface.js';
import type { DatabaseRuntime } from './database-runtime.js';

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
    await this.migrations.run();
    if (!this.tenancy) return;
    const { registry, service, options } = this.tenancy;
    await registry.start();
    if (this.options.migrateOnStartup === false || !options.migrations) return;
    const summary = await service.migrateAll();
    const applied = summary.applied.length;
    this.#logger.log(
      `Tenant migrations: ${applied} tenant(s) migrated, ${summary.skipped} up to date, ${summary.failed.length} failed (${summary.durationMs} ms)`,
    );
    for (const failure of summary.failed) {
      this.#logger.error(`Tenant ${failure.tenantId}: ${failure.error}`);
    }
    if (summary.failed.length > 0 && options.failOnMigrationError) {
      throw new TenantMigrationsFailedError(summary.failed);
    }
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
      await this.runtime.pool.end().catch((err: Error) => {
        this.#logger.warn(`Closing the connection pool failed: ${err.message}`);
      });
    })();
    return this.#closing;
  }
}
