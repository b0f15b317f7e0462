import { Option, type Command } from 'commander';
import { TENANT_TIERS, type TenantTier } from '../tenancy/tenant-tier.js';
import type { TenantInfo } from '../tenancy/registry/tenant-info.js';
import type { TenantCopyProgress } from '../tenancy/transfer/tenant-copy-job.js';
import { createProgress, type Progress } from './progress.js';
import { EXIT, parseMetadata, type TenantsCommandContext } from './tenants-commands.js';

/**
 * Registers `tenants clone`, `rename`, `export` and `import`. Each prints one line (or its
 * result as `--json`), with a progress bar per table on stderr for large tenants.
 */
export function registerTenantCopyCommands(tenants: Command, ctx: TenantsCommandContext): void {
  tenants
    .command('clone <source> <target>')
    .description(
      'create tenant <target> as a copy of <source>: schema and data from one consistent snapshot, all or nothing',
    )
    .option('--metadata <json>', "the new tenant's metadata (default: the source's)")
    .action(
      async (source: string, target: string, flags: { metadata?: string }, command: Command) => {
        const metadata = parseMetadata(flags.metadata);
        ctx.exit(
          await ctx.withTenants(command, async (service) => {
            const tenant = await withProgress(`clone ${source}`, (onProgress) =>
              service.clone(source, target, { metadata, onProgress }),
            );
            return print(
              command,
              tenant,
              `Cloned tenant ${source} into ${tenant.id} (${homeOf(tenant)}).`,
            );
          }),
        );
      },
    );

  tenants
    .command('rename <id> <newId>')
    .description(
      'rename a tenant and its schema in one transaction; every instance stops routing the old id within maxStalenessMs',
    )
    .action(async (id: string, newId: string, _flags, command: Command) => {
      ctx.exit(
        await ctx.withTenants(command, async (service) => {
          const tenant = await service.rename(id, newId);
          return print(
            command,
            tenant,
            `Renamed tenant ${id} to ${tenant.id} (schema ${tenant.schema}).`,
          );
        }),
      );
    });

  tenants
    .command('export <id> <dir>')
    .description(
      'write a tenant to a new directory: manifest.json (migration history, catalog, row counts, checksums) and a gzipped COPY file per table',
    )
    .action(async (id: string, dir: string, _flags, command: Command) => {
      ctx.exit(
        await ctx.withTenants(command, async (service) => {
          const result = await withProgress(`export ${id}`, (onProgress) =>
            service.export(id, dir, { onProgress }),
          );
          return print(
            command,
            result,
            `Exported tenant ${id} to ${result.path}: ${result.tables} table(s), ${result.rows} row(s), ${result.bytes} bytes.`,
          );
        }),
      );
    });

  tenants
    .command('import <dir>')
    .description(
      'create a tenant from an export directory, all or nothing; refused when a checksum, row count or the migration history does not match',
    )
    .option('--id <id>', "the new tenant's id (default: the exported tenant's)")
    .option('--metadata <json>', "the new tenant's metadata (default: the exported tenant's)")
    .addOption(
      new Option('--tier <tier>', "the new tenant's tier, whatever the exported tenant's")
        .choices(TENANT_TIERS)
        .default('schema'),
    )
    .action(async (dir: string, flags: ImportFlags, command: Command) => {
      const metadata = parseMetadata(flags.metadata);
      ctx.exit(
        await ctx.withTenants(command, async (service) => {
          const tenant = await withProgress(`import ${dir}`, (onProgress) =>
            service.import(dir, { id: flags.id, metadata, tier: flags.tier, onProgress }),
          );
          const line = `Imported tenant ${tenant.id} (${homeOf(tenant)}) from ${dir}.`;
          return print(command, tenant, line);
        }),
      );
    });
}

/** Where a tenant's rows are, for a line of output: `pooled`, or `schema tenant_acme`. */
function homeOf(tenant: TenantInfo): string {
  return tenant.tier === 'pooled' ? 'pooled' : `schema ${tenant.schema}`;
}

interface ImportFlags {
  id?: string;
  metadata?: string;
  tier: TenantTier;
}

/** Runs `fn` with a progress bar over the tables, created at the first table. */
async function withProgress<T>(
  label: string,
  fn: (onProgress: (p: TenantCopyProgress) => void) => Promise<T>,
): Promise<T> {
  let progress: Progress | undefined;
  try {
    return await fn((p) => {
      progress ??= createProgress(label, p.total);
      progress.tick(`${p.table} (${p.rows} rows)`);
    });
  } finally {
    progress?.stop();
  }
}

function print(command: Command, value: unknown, line: string): number {
  console.log(command.optsWithGlobals().json ? JSON.stringify(value, null, 2) : line);
  return EXIT.ok;
}
