// TenantService.move(): the checks before a distributed tenant is moved to another Citus node.
import type { CitusTenancy, MoveTenantOptions } from './citus.js';
import { TenantPlacementError } from './citus.errors.js';

/**
 * Moves tenant `id` (its schema `schema`) to the node `to` (`host:port`): refused unless `to` is
 * `host:port` of an active node that holds shards and the schema is distributed. `false` when it
 * already was there.
 *
 * @throws TenantPlacementError, CitusUnavailableError
 */
export async function moveToNode(
  citus: CitusTenancy,
  id: string,
  schema: string,
  to: string,
  options: MoveTenantOptions,
): Promise<boolean> {
  const target = /^(.+):(\d{1,5})$/.exec(to);
  if (!target) {
    throw new TenantPlacementError(
      id,
      `Cannot move tenant ${id}: the target must be host:port of a node, e.g. 10.0.0.12:5432.`,
    );
  }
  const [placement] = await citus.placements([{ id, schema }]);
  if (!placement.distributed) {
    throw new TenantPlacementError(
      id,
      `Cannot move tenant ${id}: its schema ${schema} is not a distributed schema. Distribute it first (TenantService.distribute, or \`tenants distribute ${id}\`).`,
    );
  }
  if (placement.node === to) return false;
  const nodes = await citus.nodes();
  if (!nodes.includes(to)) {
    throw new TenantPlacementError(
      id,
      `Cannot move tenant ${id} to ${to}: it is not an active node that holds shards. The nodes are: ${nodes.join(', ') || 'none'}.`,
    );
  }
  await citus.move(schema, target[1], Number(target[2]), options);
  return true;
}
