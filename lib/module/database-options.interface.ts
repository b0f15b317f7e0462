import type { ConnectionSettings } from '../pool/pool-options.js';

/**
 * Options of one named schema.
 * (Migrations per schema are configured here once the migrations feature lands.)
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface SchemaOptions {}

/**
 * Options of `DatabaseModule.forRoot()`, or what the `useFactory` of `forRootAsync()` returns:
 * where to connect and how big the pool is. See {@link ConnectionSettings}.
 */
export type DatabaseModuleOptions = ConnectionSettings;

/**
 * Options that shape the module graph, so they are given directly to `forRoot()` /
 * `forRootAsync()` and never come from an async factory.
 */
export interface DatabaseModuleExtras {
  /** Register the module globally, so every module can inject the pool and managers. Default: `true`. */
  isGlobal: boolean;
  /**
   * Named schemas: each gets a `SchemaDb` injectable with `@InjectSchemaDb(name)`. Names must be
   * valid identifiers (letters, digits, `_`, `$`; at most 63 bytes). Default: `{}`.
   *
   * @example schemas: { users: {}, orders: {} }
   */
  schemas: Record<string, SchemaOptions>;
}

/**
 * A class usable with `forRootAsync({ useClass })` or `useExisting`: Nest instantiates it with
 * its own dependencies and calls `createDatabaseOptions()`.
 */
export interface DatabaseOptionsFactory {
  createDatabaseOptions(): DatabaseModuleOptions | Promise<DatabaseModuleOptions>;
}
