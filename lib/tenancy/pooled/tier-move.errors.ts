import { PgTenancyError } from '../../shared/errors.js';
import type { TenantTier } from '../tenant-tier.js';

/**
 * Where a move left its tenant: `source` (not flipped: served from its old home, the copy and
 * the change capture may remain), `target` (flipped: served from its new home, the old copy may
 * remain until `repair` or the grace period removes it), or `nothing` (refused before it began).
 */
export type TierMoveRemains = 'nothing' | 'source' | 'target';

/**
 * `TenantService.moveTier()` was refused or did not finish. `remains` says where the tenant is
 * served from now; a move that began is recorded in the registry schema, and
 * `TenantService.repair(id)` (or `tenants repair <id>`) finishes it (flipped) or undoes it (not
 * flipped), leaving the tenant in exactly one home.
 */
export class TenantMoveError extends PgTenancyError {
  constructor(
    /** The tenant moved. */
    readonly tenantId: string,
    /** The tier it was to move to. */
    readonly to: TenantTier,
    /** Where the tenant is served from now (see {@link TierMoveRemains}). */
    readonly remains: TierMoveRemains,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(
      `Moving tenant "${tenantId}" to the ${to} tier ${remains === 'nothing' ? 'was refused' : 'did not finish'}: ${reason}${/[.!?]$/.test(reason) ? '' : '.'}` +
        (remains === 'nothing'
          ? ''
          : ` The tenant is served from its ${remains === 'source' ? 'old' : 'new'} home; run TenantService.repair("${tenantId}") (or \`tenants repair ${tenantId}\`) to ${remains === 'source' ? 'undo' : 'finish'} the move.`),
      options,
    );
  }
}
