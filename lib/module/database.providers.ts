import type { Provider } from '@nestjs/common';
import pg from 'pg';
import { assertIdentifier } from '../core/identifiers.js';
import { SchemaDb } from '../core/schema-db.js';
import { SchemaMigrator } from '../migrations/schema-migrator.js';
import { createPool } from '../pool/create-pool.js';
import { DatabaseLifecycle } from './database-lifecycle.js';
import type { DatabaseModuleOptions, SchemaOptions } from './database-options.interface.js';
import { DATABASE_SCHEMAS, DATABASE_MIGRATOR } from './database.internal-constants.js';
import { DATABASE_MODULE_OPTIONS } from './database.module-definition.js';
import { getPoolToken, getSchemaDbToken } from './database.tokens.js';

/** The one pool of the application. */
export function createPoolProvider(): Provider {
  return {
    provide: getPoolToken(),
    useFactory: (options: DatabaseModuleOptions) => createPool(options),
    inject: [DATABASE_MODULE_OPTIONS],
  };
}

/** A `SchemaDb` for `schema` (or the default manager) over the shared pool. */
export function createSchemaDbProvider(schema?: string): Provider {
  if (schema !== undefined) assertIdentifier(schema, 'schema');
  return {
    provide: getSchemaDbToken(schema),
    useFactory: (pool: pg.Pool) => SchemaDb.create(pool, schema ?? null),
    inject: [getPoolToken()],
  };
}

/**
 * Runs the migrations of `schemas` (those with a `migrations` folder) at start-up, in order.
 * `token` must be unique per module that registers one.
 */
export function createMigratorProvider(
  token: string,
  schemas: Record<string, SchemaOptions>,
): Provider {
  const sources = Object.entries(schemas)
    .filter(([, options]) => options.migrations !== undefined)
    .map(([schema, options]) => ({ schema, migrations: options.migrations! }));
  return {
    provide: token,
    useFactory: (options: DatabaseModuleOptions) => new SchemaMigrator(options, sources),
    inject: [DATABASE_MODULE_OPTIONS],
  };
}

/** Everything `forRoot`/`forRootAsync` registers. Schema names are validated here, synchronously. */
export function createRootProviders(schemas: Record<string, SchemaOptions>): {
  providers: Provider[];
  exports: Array<string | symbol>;
} {
  const names = Object.keys(schemas ?? {});
  const schemaProviders = names.map((name) => createSchemaDbProvider(name));
  return {
    providers: [
      createPoolProvider(),
      createSchemaDbProvider(),
      ...schemaProviders,
      { provide: DATABASE_SCHEMAS, useValue: Object.freeze({ ...schemas }) },
      createMigratorProvider(DATABASE_MIGRATOR, schemas ?? {}),
      DatabaseLifecycle,
    ],
    exports: [
      getPoolToken(),
      getSchemaDbToken(),
      DATABASE_MODULE_OPTIONS,
      ...names.map((name) => getSchemaDbToken(name)),
    ],
  };
}
