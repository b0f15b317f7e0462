import { access } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { InvalidOptionsError } from '../errors.js';
import type { DatabaseModuleOptions, SchemaOptions } from '../module/database-options.interface.js';
import type { TenancyOptions } from '../tenancy/tenancy-options.js';

/**
 * What the CLI reads: the same options the app gives `DatabaseModule.forRoot`, so one file can
 * feed both. Export it (or a function returning it, possibly async) as the default export of
 * `pg-tenancy.config.mjs`.
 *
 * @example
 * // pg-tenancy.config.mjs
 * export default {
 *   connection: process.env.DATABASE_URL,
 *   schemas: { users: { migrations: 'migrations/users' }, orders: { migrations: 'migrations/orders' } },
 * };
 * // app.module.ts: DatabaseModule.forRoot(config)
 */
export interface PgTenancyConfig extends DatabaseModuleOptions {
  /** The named schemas, as given to `forRoot`. Default: none. */
  schemas?: Record<string, SchemaOptions>;
  /** The tenancy options, as given to `forRoot`. Default: no tenancy. */
  tenancy?: TenancyOptions;
}

/** File names the CLI looks for in the working directory when `--config` is not given. */
const DEFAULT_CONFIG_FILES = ['pg-tenancy.config.mjs', 'pg-tenancy.config.js'];

/** Loads a config module. @throws InvalidOptionsError when it is missing or exports nothing usable. */
export async function loadCliConfig(
  file?: string,
): Promise<{ path: string; config: PgTenancyConfig }> {
  const candidates = file ? [file] : DEFAULT_CONFIG_FILES;
  for (const candidate of candidates) {
    const path = resolve(candidate);
    const exists = await access(path).then(
      () => true,
      () => false,
    );
    if (!exists) continue;
    const loaded = (await import(pathToFileURL(path).href)) as { default?: unknown };
    const exported: unknown =
      typeof loaded.default === 'function'
        ? await (loaded.default as () => unknown)()
        : loaded.default;
    if (exported === null || typeof exported !== 'object') {
      throw new InvalidOptionsError(
        `${path} must export default the database options (an object, or a function returning one).`,
      );
    }
    return { path, config: exported };
  }
  throw new InvalidOptionsError(
    file
      ? `Config file ${resolve(file)} does not exist.`
      : `No config file found: create ${DEFAULT_CONFIG_FILES[0]} exporting the database options, or pass --config FILE.`,
  );
}
