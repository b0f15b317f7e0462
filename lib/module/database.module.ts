import { Module, type DynamicModule } from '@nestjs/common';
import type { SchemaOptions } from './database-options.interface.js';
import { ConfigurableDatabaseModule } from './database.module-definition.js';
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
   * Registers the shared pool, the named schemas' managers and (with `tenancy`) tenant routing.
   * Call it once, in the root module.
   *
   * @example DatabaseModule.forRoot({ connection: process.env.DATABASE_URL, schemas: { users: {} } })
   */
  declare static forRoot: (typeof ConfigurableDatabaseModule)['forRoot'];

  /**
   * As `forRoot`, with the connection and runtime options from `useFactory`, `useClass` or
   * `useExisting` (for `@nestjs/config`); `schemas`, `tenancy` and `isGlobal` are given directly.
   *
   * @example
   * DatabaseModule.forRootAsync({
   *   imports: [ConfigModule],
   *   inject: [ConfigService],
   *   useFactory: (config: ConfigService) => ({ connection: config.getOrThrow('DATABASE_URL') }),
   *   schemas: { users: {} },
   * })
   */
  declare static forRootAsync: (typeof ConfigurableDatabaseModule)['forRootAsync'];

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
