// Where a tenant's rows live: its own schema, or the shared tables of the pooled tier.
import { InvalidOptionsError } from '../shared/errors.js';
import { assertIdentifier, MAX_IDENTIFIER_BYTES } from '../shared/identifiers.js';
import { describeValue } from '../shared/option-values.js';

/**
 * A tenant's isolation tier. `schema`: a schema of its own (the default). `pooled`: rows in the
 * shared tables of the pooled schema, held to the tenant by row-level security.
 */
export type TenantTier = 'schema' | 'pooled';

/** Every tier. */
export const TENANT_TIERS: readonly TenantTier[] = Object.freeze(['schema', 'pooled']);

/** `tenancy.pooled`: where the pooled tier keeps its tables and whom its statements run as. */
export interface PooledTierOptions {
  /** The schema of the shared tables, made from the tenant migration files. Default: `'tenancy_pooled'`. */
  schema?: string;
  /**
   * The role every pooled tenant's statement runs as (`set_config('role', …, true)`), created
   * `NOLOGIN NOBYPASSRLS` when missing and granted to the connecting user. Roles belong to the
   * whole server: give each database that uses the tier its own. Default: `'tenancy_pooled'`.
   */
  role?: string;
}

/** `tenancy.pooled` resolved; `undefined` when the tier is off. */
export interface ResolvedPooledTier {
  readonly schema: string;
  readonly role: string;
  /** The tenant column added to every pooled table. */
  readonly column: string;
}

/** The tenant column of every pooled table. */
const POOLED_TENANT_COLUMN = 'tenant_id';

/**
 * `tenancy.pooled`: `true` or an object turns the pooled tier on; absent or `false` leaves it off.
 *
 * @throws InvalidOptionsError
 */
export function resolvePooledTier(value: unknown): ResolvedPooledTier | undefined {
  if (value === undefined || value === false) return undefined;
  const options = value === true ? {} : value;
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionsError(
      `tenancy.pooled must be true, false or { schema?, role? }, received ${describeValue(value)}.`,
    );
  }
  const { schema = 'tenancy_pooled', role = 'tenancy_pooled' } = options as PooledTierOptions;
  for (const [name, given] of [
    ['schema', schema],
    ['role', role],
  ] as const) {
    if (typeof given !== 'string' || given.startsWith('pg_')) {
      throw new InvalidOptionsError(
        `tenancy.pooled.${name} must be a name that does not start with "pg_", received ${describeValue(given)}.`,
      );
    }
    assertIdentifier(given, `pooled ${name}`);
    if (Buffer.byteLength(given) > MAX_IDENTIFIER_BYTES) {
      throw new InvalidOptionsError(`tenancy.pooled.${name} is longer than 63 bytes.`);
    }
  }
  return Object.freeze({ schema, role, column: POOLED_TENANT_COLUMN });
}
