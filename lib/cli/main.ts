import { Command, CommanderError, Option } from 'commander';
import { createRequire } from 'node:module';
import { PgTenancyError } from '../shared/errors.js';
import { MigrationRunner } from '../migrations/migration-runner.js';
import type { MigrationStatus } from '../migrations/migration-types.js';
import { toSessionConfig } from '../connection/pool-options.js';
import { resolveCliConfig, type CliSettings, type PgTenancyConfig } from './cli-config.js';
import { migrateTenants, openTenancy, printTenantStatus } from './tenancy-cli.js';
import { registerTenantCopyCommands } from './tenant-copy-commands.js';
import { registerMove } from './tenant-move-commands.js';
import {
  EXIT,
  positiveInteger,
  registerTenantCommands,
  type TenantsCommandContext,
} from './tenants-commands.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

interface MigrateFlags {
  status?: boolean;
  json?: boolean;
  dryRun?: boolean;
  schema?: string[];
  /** `true` for all tenants, or a list of ids. */
  tenants?: boolean | string[];
  all?: boolean;
  canary?: string[];
  waveSize?: number;
  stopAfter?: number;
  retryFailed?: boolean;
}

const plainLogger = {
  log: (message: unknown) => console.log(String(message)),
  error: (message: unknown) => console.error(String(message)),
  warn: (message: unknown) => console.error(String(message)),
};

function selectSchemas(config: PgTenancyConfig, only: string[] | undefined): [string, string][] {
  const declared = Object.entries(config.schemas ?? {}).filter(
    ([, o]) => o.migrations !== undefined,
  ) as [string, { migrations: string }][];
  const selected = only?.length ? declared.filter(([name]) => only.includes(name)) : declared;
  const unknown = (only ?? []).filter((name) => !declared.some(([n]) => n === name));
  if (unknown.length > 0) {
    throw new PgTenancyError(
      `Unknown schema ${unknown.map((n) => `"${n}"`).join(', ')}: the config declares migrations for ${declared.map(([n]) => n).join(', ') || 'no schema'}.`,
    );
  }
  return selected.map(([name, o]) => [name, o.migrations]);
}

function printStatus(status: MigrationStatus): void {
  const last = status.applied.at(-1);
  console.log(
    `${status.schema}: ${status.applied.length} applied${last ? ` (last ${last.name})` : ''}, ` +
      `${status.pending.length} pending${status.pending.length ? ` (${status.pending.map((f) => f.name).join(', ')})` : ''}` +
      (status.changed.length ? `, CHANGED after apply: ${status.changed.join(', ')}` : '') +
      (status.missing.length ? `, MISSING from the folder: ${status.missing.join(', ')}` : ''),
  );
}

function statusJson(status: MigrationStatus) {
  return {
    schema: status.schema,
    applied: status.applied.map((m) => m.name),
    pending: status.pending.map((f) => f.name),
    changed: status.changed,
    missing: status.missing,
  };
}

async function migrateSchemas(config: PgTenancyConfig, flags: MigrateFlags): Promise<number> {
  const runner = new MigrationRunner(toSessionConfig(config), {
    statementTimeoutMs: config.migrationStatementTimeoutMs,
    lockTimeoutMs: config.migrationLockTimeoutMs,
    logger: plainLogger,
  });
  const schemas = selectSchemas(config, flags.schema);
  if (schemas.length === 0) {
    // Saying "0 migrations applied" here would hide that nothing was even looked at.
    const hint = config.tenancy
      ? flags.all
        ? ''
        : ' This config has only tenancy: run "migrate --tenants" for the tenant schemas (or "migrate --all").'
      : ' Declare schemas: { name: { migrations: "folder" } } in the config.';
    const message = `No named schemas with migrations are configured.${hint}`;
    if (flags.all) {
      if (!flags.json) console.log(message);
      return EXIT.ok;
    }
    console.error(message);
    return EXIT.usage;
  }
  if (flags.status) {
    let changed = false;
    const statuses: MigrationStatus[] = [];
    for (const [schema, dir] of schemas) {
      const status = await runner.status(schema, dir);
      statuses.push(status);
      if (!flags.json) printStatus(status);
      changed ||= status.changed.length > 0 || status.missing.length > 0;
    }
    if (flags.json) console.log(JSON.stringify(statuses.map(statusJson), null, 2));
    return changed ? EXIT.failure : EXIT.ok;
  }
  if (flags.dryRun) {
    for (const [schema, dir] of schemas) {
      const plan = await runner.plan(schema, dir);
      if (plan.length === 0) console.log(`-- ${schema}: up to date`);
      for (const step of plan) {
        console.log(
          `-- ${schema}/${step.name}${step.transactional ? '' : ' (no transaction)'}\n${step.sql.trimEnd()}\n`,
        );
      }
    }
    return EXIT.ok;
  }
  let total = 0;
  for (const [schema, dir] of schemas) {
    const result = await runner.migrate(schema, dir);
    total += result.applied.length;
    if (result.applied.length === 0) console.log(`${schema}: up to date`);
  }
  console.log(`Done: ${total} migration${total === 1 ? '' : 's'} applied.`);
  return EXIT.ok;
}

async function migrateTenantSchemas(config: PgTenancyConfig, flags: MigrateFlags): Promise<number> {
  const only = Array.isArray(flags.tenants) ? flags.tenants : undefined;
  const tenancy = await openTenancy(config, { readOnly: Boolean(flags.status || flags.dryRun) });
  try {
    if (flags.status || flags.dryRun) {
      return (await printTenantStatus(tenancy.service, only, flags.json)) ? EXIT.failure : EXIT.ok;
    }
    const summary = await migrateTenants(tenancy.service, only, {
      canary: flags.canary,
      waveSize: flags.waveSize,
      stopAfterFailures: flags.stopAfter,
      retryFailed: flags.retryFailed,
    });
    return summary.failed.length > 0 || summary.pooled?.error ? EXIT.failure : EXIT.ok;
  } finally {
    await tenancy.end();
  }
}

async function migrate(flags: MigrateFlags, command: Command): Promise<number> {
  const config = await configOf(command);
  let code: number = EXIT.ok;
  if (!flags.tenants || flags.all) code = await migrateSchemas(config, flags);
  if (code === EXIT.ok && (flags.tenants || flags.all))
    code = await migrateTenantSchemas(config, flags);
  return code;
}

/** The options from `--config`/the default config file, flags and environment. */
function configOf(command: Command): Promise<PgTenancyConfig> {
  const root = rootOf(command);
  const settings = root.opts<CliSettings>();
  return resolveCliConfig(settings, (key) => {
    const source: string | undefined = root.getOptionValueSource(key);
    return source === 'cli' || source === 'env' ? source : undefined;
  });
}

function rootOf(command: Command): Command {
  let root = command;
  while (root.parent) root = root.parent;
  return root;
}

/**
 * Builds the command-line program; actions store their exit code in `result`. Exported for
 * tests; `bin` runs {@link main}.
 */
export function buildProgram(result: { code: number } = { code: EXIT.ok }): Command {
  const program = new Command('nestjs-pg-tenancy')
    .description(
      'Migrations and tenants for nestjs-pg-tenancy. Settings come from a config module, or from flags and the environment alone; the options below are accepted before or after the subcommand.',
    )
    .version(version)
    .exitOverride()
    .showHelpAfterError()
    .option(
      '-c, --config <file>',
      'config module exporting the database options (default: pg-tenancy.config.{mjs,js,ts,mts} when present)',
    )
    .addOption(
      new Option('--database-url <url>', 'the database (over the config file)').env('DATABASE_URL'),
    )
    .addOption(
      new Option(
        '--migrations <schema=folder...>',
        'named schemas and their migration folders, e.g. users=migrations/users',
      ).env('PG_TENANCY_MIGRATIONS'),
    )
    .addOption(
      new Option('--tenant-migrations <folder>', 'migrations applied to every tenant').env(
        'PG_TENANCY_TENANT_MIGRATIONS',
      ),
    )
    .addOption(
      new Option('--schema-prefix <prefix>', 'tenant schema prefix (default: tenant_)').env(
        'PG_TENANCY_SCHEMA_PREFIX',
      ),
    )
    .option('--json', 'machine-readable output (tenants list, migrate --status, bulk commands)');
  // Global options may follow the subcommand too; commander hands them to the root.
  program.enablePositionalOptions(false);

  program
    .command('migrate')
    .description(
      'apply pending migrations of the named schemas (default), the tenants (--tenants), or both (--all)',
    )
    .addOption(
      new Option(
        '--status',
        'show applied and pending migrations; exit 1 if an applied file changed (or a tenant failed)',
      ).conflicts('dryRun'),
    )
    .option(
      '--dry-run',
      'print the SQL that would run, without running it (with --tenants: the pending counts)',
    )
    .option('-s, --schema <name...>', 'only these named schemas')
    .option('-t, --tenants [id...]', 'tenant schemas instead of named ones: all, or the ids given')
    .option('--all', 'named schemas, then every tenant')
    .option('--canary <id...>', 'tenants migrated first (wave 0); any failure stops before wave 1')
    .addOption(
      new Option('--wave-size <n>', 'tenants per wave after the canary').argParser(positiveInteger),
    )
    .addOption(
      new Option('--stop-after <n>', 'stop starting tenants after n failures').argParser(
        positiveInteger,
      ),
    )
    .option('--retry-failed', 'only the tenants whose last attempt at these files failed')
    .addHelpText(
      'after',
      `
Fleet migrations in waves (with --tenants): each wave's outcomes are recorded in the registry (the
rollout), so a rerun resumes where a run stopped (done tenants are skipped, earlier failures go last).
  migrate --tenants --canary internal beta --wave-size 500 --stop-after 3
  migrate --tenants --retry-failed
  migrate --tenants --status          fleet view: each tenant's wave and outcome, rollout state`,
    )
    .action(async (flags: MigrateFlags, command: Command) => {
      result.code = await migrate(
        { ...flags, json: rootOf(command).opts<{ json?: boolean }>().json },
        command,
      );
    });

  const tenants = program
    .command('tenants')
    .description(
      'create, drop, suspend, resume, list, clone, rename, export and import tenants, and run SQL in each',
    );
  const context: TenantsCommandContext = {
    exit: (code) => (result.code = code),
    withTenants: async (command, fn, options) => {
      const tenancy = await openTenancy(await configOf(command), options);
      try {
        return await fn(tenancy.service);
      } finally {
        await tenancy.end();
      }
    },
  };
  registerTenantCommands(tenants, context);
  registerMove(tenants, context);
  registerTenantCopyCommands(tenants, context);

  return program;
}

/** Runs the CLI with `argv` and returns the exit code. */
export async function main(argv = process.argv): Promise<number> {
  const result = { code: EXIT.ok as number };
  try {
    await buildProgram(result).parseAsync(argv);
    return result.code;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end with exitCode 0; usage errors were printed by commander.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT.failure;
  }
}
