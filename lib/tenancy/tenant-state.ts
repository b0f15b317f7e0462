/**
 * The tenant lifecycle, in one place. Every row of the registry table is in one of these states;
 * the only ways between them are the transitions below, and each is made by one statement that
 * names the state it leaves (`UPDATE … SET status = to WHERE status = from`), so two instances
 * racing each other cannot both make it.
 *
 * ```
 *   create() ──> provisioning ──(files applied)──> active <──resume()/suspend()──> suspended
 *                     │                              │                               │
 *                     └──────repair()/drop()─────────┴──────────drop()───────────────┘
 *                                                    ▼
 *                                                 dropping ──(schema dropped)──> row deleted
 * ```
 *
 * Only `active` tenants are served; `suspended` ones are refused with 403; `provisioning` and
 * `dropping` ones are invisible to requests (404) but shown by `list()` and the CLI, so an operator
 * can see and `repair` what a crash left behind.
 */
export type TenantStatus = 'provisioning' | 'active' | 'suspended' | 'dropping';

/** Every state, in lifecycle order. */
export const TENANT_STATUSES: readonly TenantStatus[] = Object.freeze([
  'provisioning',
  'active',
  'suspended',
  'dropping',
]);

/** Allowed transitions: `from` → the states it may move to. Deleting the row follows `dropping`. */
export const TENANT_TRANSITIONS: Readonly<Record<TenantStatus, readonly TenantStatus[]>> =
  Object.freeze({
    provisioning: Object.freeze<TenantStatus[]>(['active', 'dropping']),
    active: Object.freeze<TenantStatus[]>(['suspended', 'dropping']),
    suspended: Object.freeze<TenantStatus[]>(['active', 'dropping']),
    dropping: Object.freeze<TenantStatus[]>([]),
  });

/** The states `to` may be reached from. */
export function statesLeadingTo(to: TenantStatus): TenantStatus[] {
  return TENANT_STATUSES.filter((from) => TENANT_TRANSITIONS[from].includes(to));
}

/** Whether requests for a tenant in `status` may reach its schema. */
export function isServable(status: TenantStatus): boolean {
  return status === 'active';
}
