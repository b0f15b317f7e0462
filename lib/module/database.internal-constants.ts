/** The record of named schemas given to forRoot/forRootAsync (read by migrations). */
export const DATABASE_SCHEMAS = 'DatabaseModule:Schemas';

/** The migrator of the root module's named schemas. */
export const DATABASE_MIGRATOR = 'DatabaseModule:Migrator';

/** The order of named and feature schemas' migrations, held by the root module. */
export const DATABASE_MIGRATION_PLAN = 'DatabaseModule:MigrationPlan';

/** The migrator of a schema declared with forFeature. */
export const featureMigratorToken = (schema: string) => `DatabaseModule:Migrator(${schema})`;

/** The resolved tenancy options, when tenancy is configured. */
export const TENANCY_OPTIONS = 'DatabaseModule:TenancyOptions';

/** The DatabaseRuntime: pool, shutdown gate, observer and monitor of the application. */
export const DATABASE_RUNTIME = 'DatabaseModule:Runtime';
