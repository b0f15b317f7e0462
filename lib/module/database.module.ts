import { Module, type DynamicModule } from '@nestjs/common';
import type { SchemaOptions } from './database-options.interface.js';
import {
  ConfigurableDatabaseModule,
  DATABASE_ASYNC_OPTIONS_TYPE,
} from './database.module-definition.js';
import { resolveModuleOptions } from './module-options.js';
import type { DatabaseModuleExtras, DatabaseModuleOptions } from './database-options.interface.js';
import { featureMigratorToken } from './database.internal-constants.js';
import { createMigratorProvider, createSchemaDbProvider } from './database.providers.js';
import { getSchemaDbToken } from './database.tokens.js';

/** Options of {@link DatabaseModule.forFeature}. */
export interface DatabaseFeatureOptions extends SchemaOptions {
  /** The schema this feature module owns; its manager is injected with `@InjectSchemaDb(name)`. */
  name: string;
}

/**
 * Multi-tenant PostgreSQL over one shared `pg` pool.
 *
 * - `DatabaseModule.forRoot({ connection, pool, schemas })` once, in the root module.
 * - `DatabaseModule.forRootAsync({ imports, inject, useFactory, schemas })` when the connection
 *   settings come from config; `schemas` and `isGlobal` stay outside the factory because they
 *   decide which providers exist.
 * - `DatabaseModule.forFeature({ name })` in a feature or library module that owns a schema: it
 *   gets a manager over the app's pool and never opens a pool of its own.
 *
 * @example
 * DatabaseModule.forRoot({
 *   connection: process.env.DATABASE_URL,
 *   pool: { max: 20, acquireTimeoutMs: 5_000 },
 *   schemas: { users: {}, orders: {} },
 * })
 */
@Module({})
export class DatabaseModule extends ConfigurableDatabaseModule {
  /**
   * Registers the shared pool, the schema managers of `schemas`, their start-up migrations and,
   * with `tenancy`, the tenant routing, once in the root module. The options are checked when
   * the app starts: a typo or an out-of-range value fails start-up with a message saying what to
   * change. `isGlobal` (Default: `true`) makes the injected managers available to every module.
   */
  static override forRoot(
    options: DatabaseModuleOptions & Partial<DatabaseModuleExtras>,
  ): DynamicModule {
    return super.forRoot(options);
  }

  /**
   * `forRoot` with options from a factory (`useFactory`/`inject`/`imports`, `useClass` or
   * `useExisting`). `schemas`, `tenancy` and `isGlobal` go beside the factory, never in what it
   * returns: they decide which providers exist. What the factory returns is checked as soon as
   * it returns, so one of them found there fails start-up with a message saying where it goes.
   */
  static override forRootAsync(options: typeof DATABASE_ASYNC_OPTIONS_TYPE): DynamicModule {
    const { useFactory } = options;
    if (useFactory === undefined) return super.forRootAsync(options);
    return super.forRootAsync({
      ...options,
      useFactory: (...args: unknown[]) => {
        const result = (useFactory as (...a: unknown[]) => unknown)(...args);
        return result instanceof Promise
          ? result.then((value: DatabaseModuleOptions) => resolveModuleOptions(value))
          : resolveModuleOptions(result as DatabaseModuleOptions);
      },
    });
  }

  /**
   * Declares a schema owned by a feature module, served by the app's shared pool, with its own
   * migrations folder applied at start-up like the root's. The root `DatabaseModule` must be
   * global (the default).
   *
   * @example DatabaseModule.forFeature({ name: 'audit', migrations: 'migrations/audit' })
   */
  static forFeature(options: DatabaseFeatureOptions): DynamicModule {
    const { name, ...schemaOptions } = options;
    return {
      module: DatabaseModule,
      providers: [
        createSchemaDbProvider(name),
        createMigratorProvider(featureMigratorToken(name), { [name]: schemaOptions }, true),
      ],
      exports: [getSchemaDbToken(options.name)],
    };
  }
}
