import { Command, CommanderError, Option } from 'commander';
import { createRequire } from 'node:module';
import { PgTenancyError } from '../errors.js';
import { MigrationRunner, type MigrationStatus } from '../migrations/migration-runner.js';
import { toPgPoolConfig } from '../pool/pool-options.js';
import { loadCliConfig, type PgTenancyConfig } from './cli-config.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

/** Exit codes: 0 success, 1 a failure (error on stderr), 2 bad usage. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

interface MigrateFlags {
  config?: string;
  status?: boolean;
  dryRun?: boolean;
  schema?: string[];
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

async function migrate(flags: MigrateFlags): Promise<number> {
  const { config } = await loadCliConfig(flags.config);
  const runner = new MigrationRunner(toPgPoolConfig(config), {
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

/** Builds the command-line program. Exported for tests; `bin` runs {@link main}. */
export function buildProgram(): Command {
  const program = new Command('nestjs-pg-tenancy')
    .description('Migrations for nestjs-pg-tenancy schemas')
    .version(version)
    .exitOverride()
    .showHelpAfterError();
  program
    .command('migrate')
    .description('apply pending migrations of the schemas declared in the config file')
    .option(
      '-c, --config <file>',
      'config module exporting the database options (default: pg-tenancy.config.mjs)',
    )
    .addOption(
      new Option(
        '--status',
        'show applied and pending migrations; exit 1 if an applied file changed',
      ).conflicts('dryRun'),
    )
    .option('--dry-run', 'print the SQL that would run, without running it')
    .option('-s, --schema <name...>', 'only these schemas (repeatable)')
    .action(async (flags: MigrateFlags) => {
      process.exitCode = await migrate(flags);
    });
  return program;
}

/** Runs the CLI with `argv` and returns the exit code. */
export async function main(argv = process.argv): Promise<number> {
  process.exitCode = EXIT.ok;
  try {
    await buildProgram().parseAsync(argv);
    return Number(process.exitCode ?? EXIT.ok);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end with exitCode 0; usage errors were printed by commander.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT.failure;
  }
}
