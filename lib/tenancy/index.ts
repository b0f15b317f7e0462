/**
 * `nestjs-pg-tenancy/tenancy` — **stable.** The types and errors of `TenantService`'s fleet
 * operations: fleet migrations in waves, repair, clone/rename/export/import, Citus placement and
 * moves, and the registry's states. `TenantService` itself is on the main entry.
 *
 * `TenantRegistry` is **advanced**: the module's cached view of the registry table, for code that
 * needs a tenant's row without a request. It may change in a minor version (named in the CHANGELOG).
 *
 * @module tenancy
 */

// Fleet migrations: waves, canaries and the rollout record of migrateAll(); repair.
export type {
  MigrateAllOptions,
  PooledMigrationOutcome,
  TenantMigrationProgress,
  TenantMigrationState,
  TenantMigrationSummary,
} from './fleet/tenant-fleet-migrator.js';
export type { MigrationWaveOptions, MigrationWaveSummary } from './fleet/migration-waves.js';
export type {
  MigrationRolloutState,
  MigrationRolloutStop,
  TenantRolloutOutcome,
} from './fleet/tenant-rollout-store.js';
export type { TenantRepairResult } from './provisioning/tenant-provisioner.js';

// Transfer: clone, rename, export and import of a tenant, and the export format.
export type { CloneTenantOptions } from './transfer/tenant-copier.js';
export type { TenantCopyProgress } from './transfer/tenant-copy-job.js';
export type {
  ExportTenantOptions,
  ImportTenantOptions,
  TenantExportResult,
} from './transfer/tenant-transfer.js';
export {
  TENANT_EXPORT_FORMAT,
  TENANT_EXPORT_FORMAT_VERSION,
  type TenantExportManifest,
} from './transfer/tenant-export-manifest.js';
export type { MigrationHistoryEntry } from '../catalog/schema-history.js';
export type { SequencePosition } from '../catalog/schema-tables.js';
export {
  TenantCloneError,
  TenantExportError,
  TenantImportError,
  TenantRenameError,
} from './transfer/tenant-copy.errors.js';

// SQL run in each tenant (TenantService.exec, `tenants exec`).
export { TenantExecTransactionControlError, type TenantExecResult } from './tenant-exec.js';

// Citus: schema-based sharding, placements and moves (TenantService.placements/move).
export type {
  CitusMode,
  MoveTenantOptions,
  TenantMoveProgress,
  TenantPlacement,
} from './citus/citus.js';
export {
  CitusMigrationError,
  CitusUnavailableError,
  TenantPlacementError,
} from './citus/citus.errors.js';

// Registry: a tenant's row, its lifecycle states, and the registry itself (advanced).
export {
  TenantRegistry,
  type RegistrySyncState,
  type TenantEntry,
} from './registry/tenant-registry.js';
export { TENANT_STATUSES, TENANT_TRANSITIONS } from './tenant-state.js';
export { RegistryMissingError } from './registry/registry.errors.js';

// Tiers: a schema of the tenant's own, or the shared tables of the pooled tier.
export { TENANT_TIERS, type PooledTierOptions, type TenantTier } from './tenant-tier.js';
export {
  PooledMigrationError,
  PooledRoleUnsafeError,
  PooledTierDisabledError,
} from './pooled/pooled.errors.js';
export type {
  MoveTierOptions,
  TierMoveProgress,
  TierMoveResult,
} from './pooled/tier-move-options.js';
export type { TierMoveStep } from './pooled/tier-move-sql.js';
export { TenantMoveError, type TierMoveRemains } from './pooled/tier-move.errors.js';
