import { access } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { InvalidOptionsError } from '../shared/errors.js';
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
const DEFAULT_CONFIG_FILES = [
  'pg-tenancy.config.mjs',
  'pg-tenancy.config.js',
  'pg-tenancy.config.ts',
  'pg-tenancy.config.mts',
];

/**
 * The connection and migration settings the CLI takes from flags and the environment, without
 * a config file (or over one). Flags given on the command line win over the config file; the
 * environment only fills in what the file leaves out.
 */
export interface CliSettings {
  /** `--config`: the config module. Default: the first of {@link DEFAULT_CONFIG_FILES} found. */
  config?: string;
  /** `--database-url` or `DATABASE_URL`. */
  databaseUrl?: string;
  /** `--migrations schema=dir …` or `PG_TENANCY_MIGRATIONS` (`users=migrations/users,orders=…`). */
  migrations?: string[];
  /** `--tenant-migrations` or `PG_TENANCY_TENANT_MIGRATIONS`. */
  tenantMigrations?: string;
  /** `--schema-prefix` or `PG_TENANCY_SCHEMA_PREFIX`. Default: `tenant_`. */
  schemaPrefix?: string;
}

/** Where each setting came from: a flag (`cli`) beats the config file, `env` does not. */
export type SettingSource = (key: keyof CliSettings) => 'cli' | 'env' | undefined;

/**
 * The options the CLI runs with: the config module when there is one, with the flags and
 * environment of {@link CliSettings} merged in; without one, the flags and environment alone.
 * @throws InvalidOptionsError when there is neither a config file nor a database URL.
 */
export async function resolveCliConfig(
  settings: CliSettings,
  sourceOf: SettingSource = () => 'cli',
): Promise<PgTenancyConfig> {
  const file = settings.config ?? (await findDefaultConfig());
  if (file === undefined && !settings.databaseUrl) {
    throw new InvalidOptionsError(
      `No configuration: set DATABASE_URL (or pass --database-url), with PG_TENANCY_TENANT_MIGRATIONS / --tenant-migrations for tenants, or create ${DEFAULT_CONFIG_FILES[0]} exporting the database options (or pass --config FILE).`,
    );
  }
  const loaded: PgTenancyConfig = file ? (await loadCliConfig(file)).config : { tenancy: {} };
  const config: PgTenancyConfig = { ...loaded };
  const wins = (key: keyof CliSettings, present: boolean) =>
    settings[key] !== undefined && (sourceOf(key) === 'cli' || !present);

  if (wins('databaseUrl', loaded.connection !== undefined)) {
    config.connection = settings.databaseUrl;
  }
  if (wins('migrations', loaded.schemas !== undefined)) {
    config.schemas = { ...loaded.schemas, ...parseSchemaMigrations(settings.migrations!) };
  }
  const tenancy = { ...config.tenancy };
  if (wins('tenantMigrations', tenancy.migrations !== undefined)) {
    tenancy.migrations = settings.tenantMigrations;
  }
  if (wins('schemaPrefix', tenancy.schemaPrefix !== undefined)) {
    tenancy.schemaPrefix = settings.schemaPrefix;
  }
  if (config.tenancy || Object.keys(tenancy).length > 0) config.tenancy = tenancy;
  return config;
}

function parseSchemaMigrations(entries: string[]): Record<string, SchemaOptions> {
  const schemas: Record<string, SchemaOptions> = {};
  for (const entry of entries.flatMap((e) => e.split(',')).filter(Boolean)) {
    const at = entry.indexOf('=');
    if (at <= 0 || at === entry.length - 1) {
      throw new InvalidOptionsError(
        `--migrations takes schema=folder pairs (e.g. users=migrations/users), not ${JSON.stringify(entry)}.`,
      );
    }
    schemas[entry.slice(0, at)] = { migrations: entry.slice(at + 1) };
  }
  return schemas;
}

async function findDefaultConfig(): Promise<string | undefined> {
  for (const candidate of DEFAULT_CONFIG_FILES) {
    if (await exists(resolve(candidate))) return candidate;
  }
  return undefined;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/**
 * Loads a config module. A TypeScript file (`.ts`, `.mts`, `.cts`) is imported as Node does
 * (Node 22.18+ and 23.6+ strip types themselves), else through `tsx` when the project has it.
 * @throws InvalidOptionsError when it is missing, cannot be loaded, or exports nothing usable.
 */
async function loadCliConfig(file: string): Promise<{ path: string; config: PgTenancyConfig }> {
  const path = resolve(file);
  if (!(await exists(path))) throw new InvalidOptionsError(`Config file ${path} does not exist.`);
  const loaded = (await importConfig(path)) as { default?: unknown };
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

async function importConfig(path: string): Promise<unknown> {
  const url = pathToFileURL(path).href;
  if (!/\.[cm]?ts$/.test(path)) return import(url);
  try {
    return await import(url);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (
      code !== 'ERR_UNKNOWN_FILE_EXTENSION' &&
      code !== 'ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING'
    )
      throw err;
    const tsx = await importFromProject('tsx/esm/api');
    if (tsx && typeof (tsx as { tsImport?: unknown }).tsImport === 'function') {
      return (tsx as { tsImport: (p: string, parent: string) => Promise<unknown> }).tsImport(
        url,
        import.meta.url,
      );
    }
    throw new InvalidOptionsError(
      `${path} is TypeScript, which Node ${process.version} does not load by itself. Do one of: install tsx in the project (\`npm install --save-dev tsx\`), which the CLI then uses; run on Node 22.18+ (or 23.6+), which strips types; rename it to .mjs; or pass the settings as flags and environment (DATABASE_URL, PG_TENANCY_TENANT_MIGRATIONS).`,
      { cause: err },
    );
  }
}

/** Imports a package installed in the user's project (the working directory), if it is there. */
async function importFromProject(specifier: string): Promise<unknown> {
  try {
    const entry = createRequire(join(process.cwd(), 'package.json')).resolve(specifier);
    return await import(pathToFileURL(entry).href);
  } catch {
    return undefined;
  }
}
