import { Logger, type Provider } from '@nestjs/common';
import { APP_INTERCEPTOR, ModulesContainer } from '@nestjs/core';
import { assertIdentifier } from '../shared/identifiers.js';
import { SchemaDb } from '../core/schema-db.js';
import { DatabaseDrainInterceptor } from './database-drain.interceptor.js';
import { DrainController } from '../connection/drain-controller.js';
import { MigrationPlan, SchemaMigrator } from './schema-migrator.js';
import { DatabaseMonitor } from '../observability/database-monitor.js';
import {
  resolveTenancyOptions,
  type ResolvedTenancyOptions,
  type TenancyOptions,
} from '../tenancy/tenancy-options.js';
import { TenantContext } from '../tenancy/routing/tenant-context.js';
import { createTenantDbProxy } from '../tenancy/routing/tenant-db.proxy.js';
import { TenantRegistry } from '../tenancy/registry/tenant-registry.js';
import { countTenants } from '../tenancy/registry/tenant-info.js';
import { TenantInterceptor, MiddlewareTenantInterceptor } from './tenant.interceptor.js';
import { TenantAdmission } from './tenant-admission.js';
import { TenantMiddleware } from './tenant.middleware.js';
import { TenantService } from '../tenancy/tenant.service.js';
import {
  createTenantRegistry,
  createTenantService,
  type TenancyRootInput,
} from '../tenancy/tenancy-root.js';
import { TransactionalBinder } from '../transactions/transactional.binder.js';
import { DatabaseLifecycle } from './database-lifecycle.js';
import type { DatabaseModuleOptions, SchemaOptions } from './database-options.interface.js';
import {
  createDatabaseRuntime,
  type DatabaseRuntime,
  type RuntimeStructure,
} from './database-runtime.js';
import {
  DATABASE_MIGRATION_PLAN,
  DATABASE_MIGRATOR,
  DATABASE_RUNTIME,
  DATABASE_SCHEMAS,
  TENANCY_OPTIONS,
} from './database.internal-constants.js';
import { DATABASE_MODULE_OPTIONS } from './database.tokens.js';
import { resolveModuleOptions } from './module-options.js';
import { getPoolToken, getSchemaDbToken, getTenantDbToken } from './database.tokens.js';

type Token = string | symbol | (abstract new (...args: never[]) => unknown);

/**
 * The application's runtime (pool, shutdown gate, query observer, monitor), built once from the
 * options, and the tokens drawn from it. The drain interceptor is always registered; it admits
 * requests so shutdown can wait for them.
 */
function createRuntimeProviders(structure: RuntimeStructure = {}): Provider[] {
  return [
    { provide: TenantContext, useFactory: () => new TenantContext() },
    {
      provide: DATABASE_RUNTIME,
      useFactory: (options: DatabaseModuleOptions, context: TenantContext) =>
        createDatabaseRuntime(resolveModuleOptions(options), context, structure),
      inject: [DATABASE_MODULE_OPTIONS, TenantContext],
    },
    {
      provide: getPoolToken(),
      useFactory: (rt: DatabaseRuntime) => rt.pool,
      inject: [DATABASE_RUNTIME],
    },
    {
      provide: DrainController,
      useFactory: (rt: DatabaseRuntime) => rt.drain,
      inject: [DATABASE_RUNTIME],
    },
    {
      provide: DatabaseMonitor,
      useFactory: (rt: DatabaseRuntime) => rt.monitor,
      inject: [DATABASE_RUNTIME],
    },
    DatabaseDrainInterceptor,
    { provide: APP_INTERCEPTOR, useExisting: DatabaseDrainInterceptor },
  ];
}

/** A `SchemaDb` for `schema` (or the default manager) over the shared runtime. */
export function createSchemaDbProvider(schema?: string): Provider {
  if (schema !== undefined) assertIdentifier(schema, 'schema');
  return {
    provide: getSchemaDbToken(schema),
    useFactory: (runtime: DatabaseRuntime) => {
      if (schema !== undefined) runtime.namedSchemas.add(schema);
      return SchemaDb.create(runtime, schema ?? null);
    },
    inject: [DATABASE_RUNTIME],
  };
}

/**
 * A migrator for `schemas`. The root's (`feature: false`) becomes the head of the root's
 * {@link MigrationPlan}; a feature module's joins that plan, so it runs before tenants.
 */
export function createMigratorProvider(
  token: string,
  schemas: Record<string, SchemaOptions>,
  feature: boolean,
): Provider {
  const sources = Object.entries(schemas)
    .filter(([, options]) => options.migrations !== undefined)
    .map(([schema, options]) => ({ schema, migrations: options.migrations! }));
  return {
    provide: token,
    useFactory: (options: DatabaseModuleOptions, plan: MigrationPlan) => {
      const resolved = resolveModuleOptions(options);
      if (feature) return new SchemaMigrator(resolved, sources, plan);
      const migrator = new SchemaMigrator(resolved, sources);
      plan.setRoot(migrator);
      return migrator;
    },
    inject: [DATABASE_MODULE_OPTIONS, DATABASE_MIGRATION_PLAN],
  };
}

/** What the tenancy composition root builds from, in the module. */
function rootInput(runtime: DatabaseRuntime, options: ResolvedTenancyOptions): TenancyRootInput {
  return {
    env: runtime,
    connection: runtime.sessionConnection,
    options,
    logger: new Logger('Tenancy'),
    drain: runtime.drain,
  };
}

/** Registry, service, tenant-db proxy, interceptor and middleware. */
function createTenancyProviders(tenancy: ResolvedTenancyOptions): {
  providers: Provider[];
  exports: Token[];
} {
  const providers: Provider[] = [
    { provide: TENANCY_OPTIONS, useValue: tenancy },
    {
      provide: TenantRegistry,
      useFactory: (runtime: DatabaseRuntime) => {
        const registry = createTenantRegistry(rootInput(runtime, tenancy));
        runtime.tenantSync.current = () => registry.syncState();
        runtime.tenantSync.counts = () => countTenants(registry.entries().map((e) => e.info));
        return registry;
      },
      inject: [DATABASE_RUNTIME],
    },
    {
      provide: TenantService,
      useFactory: (runtime: DatabaseRuntime, registry: TenantRegistry, context: TenantContext) =>
        createTenantService(rootInput(runtime, tenancy), registry, context),
      inject: [DATABASE_RUNTIME, TenantRegistry, TenantContext],
    },
    {
      provide: getTenantDbToken(),
      useFactory: (context: TenantContext) => createTenantDbProxy(context),
      inject: [TenantContext],
    },
    TenantInterceptor,
    TenantMiddleware,
    TenantAdmission,
  ];
  if (tenancy.interceptor) {
    providers.push({ provide: APP_INTERCEPTOR, useExisting: TenantInterceptor });
  } else {
    providers.push({ provide: APP_INTERCEPTOR, useClass: MiddlewareTenantInterceptor });
  }
  return {
    providers,
    exports: [
      TENANCY_OPTIONS,
      TenantRegistry,
      TenantService,
      getTenantDbToken(),
      TenantInterceptor,
      TenantMiddleware,
      TenantAdmission,
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
  const resolvedTenancy = tenancyOptions ? resolveTenancyOptions(tenancyOptions) : undefined;
  const tenancy = resolvedTenancy ? createTenancyProviders(resolvedTenancy) : undefined;
  return {
    providers: [
      ...createRuntimeProviders({
        tenantSchemaPrefix: resolvedTenancy?.schemaPrefix,
        pooledSchema: resolvedTenancy?.pooled?.schema,
        ...(resolvedTenancy
          ? {
              tenantShare: {
                maxConnectionsPerTenant: resolvedTenancy.maxConnectionsPerTenant,
              },
            }
          : {}),
      }),
      createSchemaDbProvider(),
      ...names.map((name) => createSchemaDbProvider(name)),
      {
        provide: TransactionalBinder,
        useFactory: (modules: ModulesContainer, db: SchemaDb) =>
          new TransactionalBinder(modules, db),
        inject: [ModulesContainer, getSchemaDbToken()],
      },
      { provide: DATABASE_SCHEMAS, useValue: Object.freeze({ ...schemas }) },
      { provide: DATABASE_MIGRATION_PLAN, useFactory: () => new MigrationPlan() },
      createMigratorProvider(DATABASE_MIGRATOR, schemas ?? {}, false),
      ...(tenancy?.providers ?? []),
      {
        provide: DatabaseLifecycle,
        useFactory: (
          runtime: DatabaseRuntime,
          options: DatabaseModuleOptions,
          _rootMigrator: SchemaMigrator,
          plan: MigrationPlan,
          tenancyOpts?: ResolvedTenancyOptions,
          registry?: TenantRegistry,
          service?: TenantService,
        ) =>
          new DatabaseLifecycle(
            runtime,
            resolveModuleOptions(options),
            plan,
            tenancyOpts && registry && service
              ? { options: tenancyOpts, registry, service }
              : undefined,
          ),
        inject: [
          DATABASE_RUNTIME,
          DATABASE_MODULE_OPTIONS,
          // Created first, so the plan has its head before any hook runs.
          DATABASE_MIGRATOR,
          DATABASE_MIGRATION_PLAN,
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
      DATABASE_MIGRATION_PLAN,
      DATABASE_RUNTIME,
      TenantContext,
      DrainController,
      DatabaseMonitor,
      ...names.map((name) => getSchemaDbToken(name)),
      ...(tenancy?.exports ?? []),
    ],
  };
}
