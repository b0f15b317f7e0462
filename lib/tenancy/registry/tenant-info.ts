import type { ViewRow } from './registry-snapshot.js';
import type { TenantStatus } from '../tenant-state.js';
import type { TenantTier } from '../tenant-tier.js';

/** A tenant as the registry records it. */
export interface TenantInfo {
  /** The tenant id, as passed to `TenantService.create()` and resolved from requests. */
  readonly id: string;
  /**
   * The PostgreSQL schema holding the tenant's tables (unquoted). For a `pooled` tenant, the
   * name its schema gets when it is moved to the `schema` tier (reserved, not created).
   */
  readonly schema: string;
  /** Where its rows live: its own `schema`, or the shared tables of the `pooled` tier. */
  readonly tier: TenantTier;
  /** See the lifecycle in `tenant-state.ts`: only `active` tenants are served. */
  readonly status: TenantStatus;
  /** The `metadata` given to `TenantService.create()` (a `jsonb` column); `{}` when none. */
  readonly metadata: Record<string, unknown>;
  /** When the registry row was created. */
  readonly createdAt: Date;
  /** Number of tenant migration files applied, as of the last `migrateAll()`/`create()`. */
  readonly migratedVersion: number;
  /** When a migration run last succeeded for the tenant; `null` before the first. */
  readonly lastMigratedAt: Date | null;
  /** Why the last migration attempt failed, or `null`. */
  readonly lastError: string | null;
  /** The row's version: grows with every change, from the registry's sequence. */
  readonly version: number;
}

/** Tenants by tier and status: the pairs that occur, each with its count. */
export function countTenants(
  tenants: readonly TenantInfo[],
): { tier: TenantTier; status: TenantStatus; count: number }[] {
  const counts = new Map<string, { tier: TenantTier; status: TenantStatus; count: number }>();
  for (const { tier, status } of tenants) {
    const key = `${tier}/${status}`;
    const held = counts.get(key);
    if (held) held.count++;
    else counts.set(key, { tier, status, count: 1 });
  }
  return [...counts.values()];
}

/** A registry row as `TenantInfo` (frozen). */
export function toTenantInfo(row: ViewRow): TenantInfo {
  return Object.freeze({
    id: row.id,
    schema: row.schema_name,
    tier: row.tier,
    status: row.status,
    metadata: row.metadata,
    createdAt: row.created_at,
    migratedVersion: row.migrated_version,
    lastMigratedAt: row.last_migrated_at,
    lastError: row.last_error,
    version: row.version,
  });
}
