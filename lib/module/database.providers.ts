import { Logger, type Provider } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import pg from 'pg';
import { assertIdentifier } from '../core/identifiers.js';
import { SchemaDb } from '../core/schema-db.js';
import { SchemaMigrator } from '../migrations/schema-migrator.js';
import { createPool } from '../pool/create-pool.js';
import { toPgPoolConfig } from '../pool/pool-options.js';
import {
  resolveTenancyOptions,
  type ResolvedTenancyOptions,
  type TenancyOptions,
} from '../tenancy/tenancy-options.js';
import { TenantContext } from '../tenancy/tenant-context.js';
import { createTenantDbProxy } from '../tenancy/tenant-db.proxy.js';
import { TenantInterceptor } from '../tenancy/tenant.interceptor.js';
import { TenantMiddleware } from '../tenancy/tenant.middleware.js';
import { TenantRegistry } from '../tenancy/tenant-registry.js';
import { TenantService } from '../tenancy/tenant.service.js';
import { DatabaseLifecycle } from './database-lifecycle.js';
import type { DatabaseModuleOptions, SchemaOptions } from './database-options.interface.js';
import {
  DATABASE_MIGRATOR,
  DATABASE_SCHEMAS,
  TENANCY_OPTIONS,
} from './database.internal-constants.js';
import { DATABASE_MODULE_OPTIONS } from './database.module-definition.js';
import { getPoolToken, getSchemaDbToken, getTenantDbToken } from './database.tokens.js';

type Token = string | symbol | (abstract new (...args: never[]) => unknown);

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
 * Runs the migrations of `schemas` (those with a `migrations` folder), in order. `token` must be
 * unique per module that registers one; `runsItself` makes it migrate in its own `onModuleInit`.
 */
export function createMigratorProvider(
  token: string,
  schemas: Record<string, SchemaOptions>,
  runsItself: boolean,
): Provider {
  const sources = Object.entries(schemas)
    .filter(([, options]) => options.migrations !== undefined)
    .map(([schema, options]) => ({ schema, migrations: options.migrations! }));
  return {
    provide: token,
    useFactory: (options: DatabaseModuleOptions) =>
      new SchemaMigrator(options, sources, runsItself),
    inject: [DATABASE_MODULE_OPTIONS],
  };
}

/** Registry, context, service, tenant-db proxy, interceptor and middleware. */
function createTenancyProviders(tenancy: ResolvedTenancyOptions): {
  providers: Provider[];
  exports: Token[];
} {
  const providers: Provider[] = [
    { provide: TENANCY_OPTIONS, useValue: tenancy },
    { provide: TenantContext, useFactory: () => new TenantContext() },
    {
      provide: TenantRegistry,
      useFactory: (pool: pg.Pool, options: DatabaseModuleOptions) =>
        new TenantRegistry(pool, toPgPoolConfig(options), tenancy, new Logger('Tenancy')),
      inject: [getPoolToken(), DATABASE_MODULE_OPTIONS],
    },
    {
      provide: TenantService,
      useFactory: (
        pool: pg.Pool,
        options: DatabaseModuleOptions,
        registry: TenantRegistry,
        context: TenantContext,
      ) => new TenantService(pool, toPgPoolConfig(options), tenancy, registry, context),
      inject: [getPoolToken(), DATABASE_MODULE_OPTIONS, TenantRegistry, TenantContext],
    },
    {
      provide: getTenantDbToken(),
      useFactory: (context: TenantContext) => createTenantDbProxy(context),
      inject: [TenantContext],
    },
    TenantInterceptor,
    TenantMiddleware,
  ];
  if (tenancy.interceptor)
    providers.push({ provide: APP_INTERCEPTOR, useExisting: TenantInterceptor });
  return {
    providers,
    exports: [
      TENANCY_OPTIONS,
      TenantContext,
      TenantRegistry,
      TenantService,
      getTenantDbToken(),
      TenantInterceptor,
      TenantMiddleware,
    ],
  };
}

/**
 * Everything `forRoot`/`forRootAsync` registers. Schema names and tenancy options are validated
 * here, synchronously, while the module is defined.
 */
export function createRootProviders(
  schemas: Record<string, SchemaOptions>,
  tenancyOptions?: TenancyOptions,
): { providers: Provider[]; exports: Token[] } {
  const names = Object.keys(schemas ?? {});
  const tenancy = tenancyOptions
    ? createTenancyProviders(resolveTenancyOptions(tenancyOptions))
    : undefined;
  return {
    providers: [
      createPoolProvider(),
      createSchemaDbProvider(),
      ...names.map((name) => createSchemaDbProvider(name)),
      { provide: DATABASE_SCHEMAS, useValue: Object.freeze({ ...schemas }) },
      createMigratorProvider(DATABASE_MIGRATOR, schemas ?? {}, false),
      ...(tenancy?.providers ?? []),
      {
        provide: DatabaseLifecycle,
        useFactory: (
          pool: pg.Pool,
          options: DatabaseModuleOptions,
          migrator: SchemaMigrator,
          tenancyOpts?: ResolvedTenancyOptions,
          registry?: TenantRegistry,
          service?: TenantService,
        ) =>
          new DatabaseLifecycle(
            pool,
            options,
            migrator,
            tenancyOpts && registry && service
              ? { options: tenancyOpts, registry, service }
              : undefined,
          ),
        inject: [
          getPoolToken(),
          DATABASE_MODULE_OPTIONS,
          DATABASE_MIGRATOR,
          { token: TENANCY_OPTIONS, optional: true },
          { token: TenantRegistry, optional: true },
          { token: TenantService, optional: true },
        ],
      },
    ],
    exports: [
      getPoolToken(),
      getSchemaDbToken(),
      DATABASE_MODULE_OPTIONS,
      ...names.map((name) => getSchemaDbToken(name)),
      ...(tenancy?.exports ?? []),
    ],
  };
}
