// `tenants move`: a tenant to another tier (`--to schema|pooled`) or to another Citus node.
import { Option, type Command } from 'commander';
import { createByteProgress } from './progress.js';
import { EXIT, type TenantsCommandContext } from './tenants-commands.js';

/** Registers `tenants move <id> --to schema|pooled|<host:port>`. */
export function registerMove(tenants: Command, ctx: TenantsCommandContext): void {
  tenants
    .command('move <id>')
    .description(
      'move a tenant online, while it serves: --to schema|pooled moves it between tiers (copy, catch-up, a short write pause, the flip; `tenants repair` finishes or undoes a cut move), --to <host:port> to another Citus node (logical replication, then switched over)',
    )
    .requiredOption(
      '--to <schema|pooled|host:port>',
      'the tier, or the target Citus node as listed in pg_dist_node',
    )
    .option('--grace-ms <ms>', 'tier moves: keep the old copy this long after the flip', Number)
    .addOption(
      new Option('--mode <mode>', "Citus's shard_transfer_mode")
        .choices(['force_logical', 'block_writes', 'auto'])
        .default('force_logical'),
    )
    .action(
      async (
        id: string,
        flags: { to: string; mode: 'force_logical' | 'block_writes' | 'auto'; graceMs?: number },
        command: Command,
      ) => {
        if (flags.to === 'schema' || flags.to === 'pooled') {
          const to = flags.to;
          ctx.exit(
            await ctx.withTenants(command, async (service) => {
              const moved = await service.moveTier(id, to, {
                graceMs: flags.graceMs,
                onProgress: (p) => {
                  if (!command.optsWithGlobals().json) console.error(`move ${id}: ${p.step}`);
                },
              });
              if (command.optsWithGlobals().json) console.log(JSON.stringify(moved));
              else
                console.log(
                  moved.moved
                    ? `Moved tenant ${id} from the ${moved.from} tier to the ${to} tier: ${moved.copiedRows} rows copied, ${moved.replayedChanges} changes caught up, writes paused ${Math.round(moved.pauseMs)} ms.`
                    : `Tenant ${id} is already in the ${to} tier: nothing moved.`,
                );
              return EXIT.ok;
            }),
          );
          return;
        }
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
