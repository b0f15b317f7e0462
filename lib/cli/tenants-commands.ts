import { Command, InvalidArgumentError, Option } from 'commander';
import { readFile } from 'node:fs/promises';
import pMap from 'p-map';
import { PgTenancyError } from '../shared/errors.js';
import { assertNoTransactionControl } from '../tenancy/tenant-exec.js';
import type { TenantService } from '../tenancy/tenant.service.js';
import { TENANT_TIERS, type TenantTier } from '../tenancy/tenant-tier.js';
import { createProgress } from './progress.js';
import { printTable, printTenantList } from './tenancy-cli.js';

/** Exit codes: 0 success, 1 a failure (error on stderr), 2 bad usage. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

/**
 * What a tenants subcommand gets: a way to run with an open `TenantService` (closed afterwards)
 * and the global flags. Commands use only `TenantService`'s public methods.
 */
export interface TenantsCommandContext {
  /** Opens the service from the resolved config, runs `fn`, closes; returns `fn`'s exit code. */
  withTenants(
    command: Command,
    fn: (service: TenantService) => Promise<number>,
    /** `readOnly`: create nothing in the database (no registry schema or table). */
    options?: { readOnly?: boolean },
  ): Promise<number>;
  /** Stores the command's exit code. */
  exit(code: number): void;
}

/** The outcome of one tenant in a bulk command, as printed and as `--json`. */
export interface TenantOutcome {
  tenant: string;
  ok: boolean;
  error?: string;
  [detail: string]: unknown;
}

const concurrencyOption = () =>
  new Option('-j, --concurrency <n>', 'tenants at once').default(4).argParser(positiveInteger);

/**
 * Registers the `tenants` subcommands. Each is a function of its own below: a new one (a
 * `repair`, say) is one more `register…` call here.
 */
export function registerTenantCommands(tenants: Command, ctx: TenantsCommandContext): void {
  registerCreate(tenants, ctx);
  registerDrop(tenants, ctx);
  registerSuspendResume(tenants, ctx);
  registerList(tenants, ctx);
  registerRepair(tenants, ctx);
  registerExec(tenants, ctx);
  registerPlacement(tenants, ctx);
  registerDistribute(tenants, ctx);
}

function registerCreate(tenants: Command, ctx: TenantsCommandContext): void {
  tenants
    .command('create <ids...>')
    .description(
      'create tenants: registry row, schema and migrations, all or nothing per tenant; exit 1 if any failed',
    )
    .option('--metadata <json>', 'JSON object stored with each tenant')
    .addOption(
      new Option('--tier <tier>', 'schema: a schema of its own; pooled: rows in the shared tables')
        .choices(TENANT_TIERS)
        .default('schema'),
    )
    .addOption(concurrencyOption())
    .action(
      async (
        ids: string[],
        flags: { metadata?: string; tier: TenantTier; concurrency: number },
        command: Command,
      ) => {
        const metadata = parseMetadata(flags.metadata);
        ctx.exit(
          await ctx.withTenants(command, async (service) => {
            const outcomes = await eachTenant(ids, flags.concurrency, 'create', async (id) => {
              const tenant = await service.create(id, { metadata, tier: flags.tier });
              const { schema, tier, migratedVersion: migrations } = tenant;
              return { tier, schema, migrations };
            });
            return report(command, outcomes, (o) =>
              o.ok
                ? o.tier === 'pooled'
                  ? `Created tenant ${o.tenant} (pooled, ${String(o.migrations)} migration(s)).`
                  : `Created tenant ${o.tenant} (schema ${String(o.schema)}, ${String(o.migrations)} migration(s)).`
                : `${o.tenant}: FAILED ${o.error}`,
            );
          }),
        );
      },
    );
}

function registerDrop(tenants: Command, ctx: TenantsCommandContext): void {
  tenants
    .command('drop <id>')
    .description("drop a tenant's schema with all its data, and its registry row")
    .requiredOption('--yes', 'confirm: the data cannot be recovered')
    .action(async (id: string, _flags, command: Command) => {
      ctx.exit(
        await ctx.withTenants(command, async (service) => {
          await service.drop(id);
          console.log(`Dropped tenant ${id}.`);
          return EXIT.ok;
        }),
      );
    });
}

function registerSuspendResume(tenants: Command, ctx: TenantsCommandContext): void {
  for (const [name, verb] of [
    ['suspend', 'refuse'],
    ['resume', 'serve again'],
  ] as const) {
    tenants
      .command(`${name} <id>`)
      .description(`${verb} a tenant's requests`)
      .action(async (id: string, _flags, command: Command) => {
        ctx.exit(
          await ctx.withTenants(command, async (service) => {
            const tenant = await service[name](id);
            console.log(`Tenant ${tenant.id} is ${tenant.status}.`);
            return EXIT.ok;
          }),
        );
      });
  }
}

function registerList(tenants: Command, ctx: TenantsCommandContext): void {
  tenants
    .command('list')
    .description('list tenants (--json: an array of objects)')
    .action(async (_flags, command: Command) => {
      ctx.exit(
        await ctx.withTenants(
          command,
          async (service) => {
            await printTenantList(service, Boolean(command.optsWithGlobals().json));
            return EXIT.ok;
          },
          { readOnly: true },
        ),
      );
    });
}

function registerRepair(tenants: Command, ctx: TenantsCommandContext): void {
  tenants
    .command('repair <id>')
    .description(
      'finish what a crash interrupted: a tenant left provisioning gets its remaining migrations, one left dropping is removed, a move between tiers is finished (flipped) or undone',
    )
    .action(async (id: string, _flags, command: Command) => {
      ctx.exit(
        await ctx.withTenants(command, async (service) => {
          const repaired = await service.repair(id);
          console.log(
            repaired.action === 'none'
              ? `Tenant ${id} is ${repaired.before}: nothing to repair.`
              : repaired.action === 'finished-create'
                ? `Tenant ${id} was provisioning: migrations finished, now active.`
                : repaired.action === 'removed'
                  ? `Tenant ${id} was provisioning without a schema: its row was removed.`
                  : repaired.action === 'finished-move'
                    ? `Tenant ${id} had moved tiers: its old copy was removed.`
                    : repaired.action === 'undid-move'
                      ? `Tenant ${id} was moving tiers: the move was undone, it stays where it was.`
                      : `Tenant ${id} was dropping: schema and row removed.`,
          );
          return EXIT.ok;
        }),
      );
    });
}

function registerExec(tenants: Command, ctx: TenantsCommandContext): void {
  tenants
    .command('exec')
    .description(
      'run SQL in every tenant (or --tenants), each in a transaction, with {{tables.x}} and {{schema}} placeholders; exit 1 if any tenant failed',
    )
    .addOption(new Option('-f, --file <path>', 'a file of SQL statements').conflicts('sql'))
    .addOption(new Option('-e, --sql <statement>', 'SQL statements given inline'))
    .option('-t, --tenants <id...>', 'only these tenants (default: every tenant)')
    .addOption(concurrencyOption())
    .action(
      async (
        flags: { file?: string; sql?: string; tenants?: string[]; concurrency: number },
        command: Command,
      ) => {
        if (flags.file === undefined && flags.sql === undefined) {
          command.error('error: tenants exec needs --file <path> or --sql <statement>');
        }
        const sql = flags.sql ?? (await readFile(flags.file!, 'utf8'));
        // Before connecting: a text that commits part of itself is refused for every tenant.
        assertNoTransactionControl(sql, flags.file ?? '--sql');
        ctx.exit(
          await ctx.withTenants(command, async (service) => {
            const ids = flags.tenants ?? (await service.list()).map((t) => t.id);
            const outcomes = await eachTenant(ids, flags.concurrency, 'exec', async (id) => ({
              ...(await service.exec(id, sql)),
            }));
            return report(command, outcomes, (o) =>
              o.ok
                ? `${o.tenant}: ok (${String(o.rowCount)} row(s))`
                : `${o.tenant}: FAILED ${o.error}`,
            );
          }),
        );
      },
    );
}

function registerPlacement(tenants: Command, ctx: TenantsCommandContext): void {
  tenants
    .command('placement [ids...]')
    .description(
      'show where each tenant lives on a Citus cluster: its worker (host:port), or local (--json: an array)',
    )
    .action(async (ids: string[], _flags, command: Command) => {
      ctx.exit(
        await ctx.withTenants(
          command,
          async (service) => {
            const placements = await service.placements(ids.length > 0 ? ids : undefined);
            if (command.optsWithGlobals().json) {
              console.log(JSON.stringify(placements, null, 2));
              return EXIT.ok;
            }
            printTable(
              ['tenant', 'schema', 'node', 'shards'],
              placements.map((p) => [
                p.tenantId,
                p.schema,
                p.distributed ? (p.node ?? 'distributed, no tables yet') : 'local',
                String(p.shards),
              ]),
            );
            const local = placements.filter((p) => !p.distributed).length;
            console.log(
              `${placements.length} tenant(s), ${local} local.` +
                (local > 0 && placements.length > local
                  ? ' `tenants distribute` makes the local ones distributed.'
                  : ''),
            );
            return EXIT.ok;
          },
          { readOnly: true },
        ),
      );
    });
}

function registerDistribute(tenants: Command, ctx: TenantsCommandContext): void {
  tenants
    .command('distribute [ids...]')
    .description(
      'make existing tenants Citus distributed schemas (citus_schema_distribute), all of them or the ids given; exit 1 if any failed',
    )
    .addOption(
      new Option('-j, --concurrency <n>', 'tenants at once').default(1).argParser(positiveInteger),
    )
    .action(async (ids: string[], flags: { concurrency: number }, command: Command) => {
      ctx.exit(
        await ctx.withTenants(command, async (service) => {
          const targets = ids.length > 0 ? ids : (await service.list()).map((t) => t.id);
          const outcomes = await eachTenant(
            targets,
            flags.concurrency,
            'distribute',
            async (id) => ({ distributed: await service.distribute(id) }),
          );
          return report(command, outcomes, (o) =>
            o.ok
              ? `${o.tenant}: ${o.distributed ? 'distributed' : 'already distributed'}`
              : `${o.tenant}: FAILED ${o.error}`,
          );
        }),
      );
    });
}

/**
 * Runs `fn` for each tenant id, `concurrency` at once, with a progress bar; one tenant's failure
 * does not stop the others. Outcomes come back in the order of `ids`.
 */
async function eachTenant(
  ids: string[],
  concurrency: number,
  label: string,
  fn: (id: string) => Promise<Record<string, unknown>>,
): Promise<TenantOutcome[]> {
  const progress = createProgress(label, ids.length);
  try {
    return await pMap(
      ids,
      async (tenant): Promise<TenantOutcome> => {
        try {
          return { tenant, ok: true, ...(await fn(tenant)) };
        } catch (err) {
          return { tenant, ok: false, error: err instanceof Error ? err.message : String(err) };
        } finally {
          progress.tick(tenant);
        }
      },
      { concurrency },
    );
  } finally {
    progress.stop();
  }
}

/** Prints outcomes (a line each, or `--json`) and a summary; exit 1 when any failed. */
function report(
  command: Command,
  outcomes: TenantOutcome[],
  line: (outcome: TenantOutcome) => string,
): number {
  const failed = outcomes.filter((o) => !o.ok).length;
  if (command.optsWithGlobals().json) {
    console.log(JSON.stringify(outcomes, null, 2));
  } else {
    for (const outcome of outcomes) (outcome.ok ? console.log : console.error)(line(outcome));
    console.log(`${outcomes.length - failed} succeeded, ${failed} failed.`);
  }
  return failed > 0 ? EXIT.failure : EXIT.ok;
}

/** `--metadata` as an object. @throws PgTenancyError when it is not a JSON object */
export function parseMetadata(text: string | undefined): Record<string, unknown> | undefined {
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

/** Commander parser of a positive integer argument. */
export function positiveInteger(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    throw new InvalidArgumentError('it must be a positive integer.');
  }
  return n;
}
