import { Command, CommanderError, Option } from 'commander';
import { createRequire } from 'node:module';
import { PgTenancyError } from '../errors.js';
import { MigrationRunner, type MigrationStatus } from '../migrations/migration-runner.js';
import { toSessionConfig } from '../pool/pool-options.js';
import { loadCliConfig, type PgTenancyConfig } from './cli-config.js';
import { migrateTenants, openTenancy, printTenantList, printTenantStatus } from './tenancy-cli.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

/** Exit codes: 0 success, 1 a failure (error on stderr), 2 bad usage. */
const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

interface MigrateFlags {
  config?: string;
  status?: boolean;
  dryRun?: boolean;
  schema?: string[];
  /** `true` for all tenants, or a list of ids. */
  tenants?: boolean | string[];
  all?: boolean;
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
      (status.changed.length ? `, CHANGED after apply: ${status.changed.join(', ')}` : ''),
  );
}

async function migrateSchemas(config: PgTenancyConfig, flags: MigrateFlags): Promise<number> {
  const runner = new MigrationRunner(toSessionConfig(config), {
    statementTimeoutMs: config.migrationStatementTimeoutMs,
    logger: plainLogger,
  });
  const schemas = selectSchemas(config, flags.schema);
  if (flags.status) {
    let changed = false;
    for (const [schema, dir] of schemas) {
      const status = await runner.status(schema, dir);
      printStatus(status);
      changed ||= status.changed.length > 0;
    }
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
  const tenancy = await openTenancy(config);
  try {
    if (flags.status || flags.dryRun) {
      return (await printTenantStatus(tenancy.service, only)) ? EXIT.failure : EXIT.ok;
    }
    const summary = await migrateTenants(tenancy.service, only);
    return summary.failed.length > 0 ? EXIT.failure : EXIT.ok;
  } finally {
    await tenancy.end();
  }
}

async function migrate(flags: MigrateFlags): Promise<number> {
  const { config } = await loadCliConfig(flags.config);
  let code: number = EXIT.ok;
  if (!flags.tenants || flags.all) code = await migrateSchemas(config, flags);
  if (code === EXIT.ok && (flags.tenants || flags.all))
    code = await migrateTenantSchemas(config, flags);
  return code;
}

async function withTenants(
  flags: { config?: string },
  fn: (service: Awaited<ReturnType<typeof openTenancy>>['service']) => Promise<void>,
): Promise<number> {
  const { config } = await loadCliConfig(flags.config);
  const tenancy = await openTenancy(config);
  try {
    await fn(tenancy.service);
    return EXIT.ok;
  } finally {
    await tenancy.end();
  }
}

function parseMetadata(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    if (value !== null && typeof value === 'object' && !Array.isArray(value))
      return value as Record<string, unknown>;
  } catch {
    // fall through to the error below
  }
  throw new PgTenancyError('--metadata must be a JSON object, e.g. \'{"plan":"pro"}\'.');
}

/**
 * Builds the command-line program; actions store their exit code in `result`. Exported for
 * tests; `bin` runs {@link main}.
 */
function buildProgram(result: { code: number } = { code: EXIT.ok }): Command {
  const program = new Command('nestjs-pg-tenancy')
    .description('Migrations and tenants for nestjs-pg-tenancy')
    .version(version)
    .exitOverride()
    .showHelpAfterError();
  const configOption = () =>
    new Option(
      '-c, --config <file>',
      'config module exporting the database options (default: pg-tenancy.config.mjs)',
    );

  program
    .command('migrate')
    .description(
      'apply pending migrations of the named schemas (default), the tenants (--tenants), or both (--all)',
    )
    .addOption(configOption())
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
    .action(async (flags: MigrateFlags) => {
      result.code = await migrate(flags);
    });

  const tenants = program.command('tenants').description('create, drop and list tenants');
  tenants
    .command('create <id>')
    .description('create a tenant: registry row, schema and migrations, all or nothing')
    .addOption(configOption())
    .option('--metadata <json>', 'JSON object stored with the tenant')
    .action(async (id: string, flags: { config?: string; metadata?: string }) => {
      const metadata = parseMetadata(flags.metadata);
      result.code = await withTenants(flags, async (service) => {
        const tenant = await service.create(id, { metadata });
        console.log(
          `Created tenant ${tenant.id} (schema ${tenant.schema}, ${tenant.migratedVersion} migration(s)).`,
        );
      });
    });
  tenants
    .command('drop <id>')
    .description("drop a tenant's schema with all its data, and its registry row")
    .addOption(configOption())
    .requiredOption('--yes', 'confirm: the data cannot be recovered')
    .action(async (id: string, flags: { config?: string }) => {
      result.code = await withTenants(flags, async (service) => {
        await service.drop(id);
        console.log(`Dropped tenant ${id}.`);
      });
    });
  for (const [name, verb] of [
    ['suspend', 'refuse'],
    ['resume', 'serve again'],
  ] as const) {
    tenants
      .command(`${name} <id>`)
      .description(`${verb} a tenant's requests`)
      .addOption(configOption())
      .action(async (id: string, flags: { config?: string }) => {
        result.code = await withTenants(flags, async (service) => {
          const tenant = await service[name](id);
          console.log(`Tenant ${tenant.id} is ${tenant.status}.`);
        });
      });
  }
  tenants
    .command('list')
    .description('list tenants')
    .addOption(configOption())
    .action(async (flags: { config?: string }) => {
      result.code = await withTenants(flags, (service) => printTenantList(service));
    });

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
