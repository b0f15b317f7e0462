// `tenants move`: a tenant to another Citus node.
import { Option, type Command } from 'commander';
import { createByteProgress } from './progress.js';
import { EXIT, type TenantsCommandContext } from './tenants-commands.js';

/** Registers `tenants move <id> --to <host:port>`. */
export function registerMove(tenants: Command, ctx: TenantsCommandContext): void {
  tenants
    .command('move <id>')
    .description(
      'move a tenant to another Citus node online: its tables are copied and kept in sync by logical replication while it serves, then switched over',
    )
    .requiredOption('--to <host:port>', 'the target node, as listed in pg_dist_node')
    .addOption(
      new Option('--mode <mode>', "Citus's shard_transfer_mode")
        .choices(['force_logical', 'block_writes', 'auto'])
        .default('force_logical'),
    )
    .action(
      async (
        id: string,
        flags: { to: string; mode: 'force_logical' | 'block_writes' | 'auto' },
        command: Command,
      ) => {
        ctx.exit(
          await ctx.withTenants(command, async (service) => {
            const [before] = await service.placements([id]);
            const started = performance.now();
            const progress = createByteProgress(`move ${id}`);
            let moved: boolean;
            try {
              moved = await service.move(id, flags.to, {
                mode: flags.mode,
                onProgress: (p) => progress.update(p.copiedBytes, p.totalBytes),
              });
            } finally {
              progress.stop();
            }
            const seconds = ((performance.now() - started) / 1000).toFixed(1);
            const line = moved
              ? `Moved tenant ${id} from ${before?.node ?? '?'} to ${flags.to} in ${seconds} s.`
              : `Tenant ${id} is already on ${flags.to}: nothing moved.`;
            if (command.optsWithGlobals().json) {
              console.log(JSON.stringify({ tenant: id, moved, from: before?.node, to: flags.to }));
            } else console.log(line);
            return EXIT.ok;
          }),
        );
      },
    );
}
