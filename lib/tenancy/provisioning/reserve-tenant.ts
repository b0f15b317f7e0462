// Reserving a new tenant's id and schema: what create, clone and import share.
import type pg from 'pg';
import { quoteIdentifier } from '../../shared/identifiers.js';
import type { TenantRegistry } from '../registry/tenant-registry.js';
import { lockTenant } from '../tenant-locks.js';
import { TenantAlreadyExistsError } from '../tenant.errors.js';

/**
 * In the open transaction on `client`: inserts tenant `id`'s registry row (`provisioning`; an
 * existing tenant is refused at once, whatever holds its lock), takes the tenant's lock, runs
 * `beforeCreateSchema` and creates the empty schema. A schema that already exists is never
 * adopted: the error says it was left untouched. Resolves with what `beforeCreateSchema` did.
 *
 * @throws TenantAlreadyExistsError, or an `Error` when the schema already exists.
 */
export async function reserveTenant<T>(
  client: pg.ClientBase,
  registry: TenantRegistry,
  tenant: { id: string; schema: string; metadata: Record<string, unknown> },
  beforeCreateSchema?: (client: pg.ClientBase) => Promise<T>,
): Promise<T | undefined> {
  if (!(await registry.store.insertProvisioning(client, tenant))) {
    const existing = await registry.store.one(tenant.id, client);
    throw new TenantAlreadyExistsError(tenant.id, existing?.status);
  }
  await lockTenant(client, tenant.schema);
  const prepared = await beforeCreateSchema?.(client);
  try {
    await client.query(`CREATE SCHEMA ${quoteIdentifier(tenant.schema)}`);
  } catch (err) {
    if ((err as { code?: string }).code === '42P06') {
      throw new Error(
        `schema "${tenant.schema}" already exists and was left untouched; drop or rename it, or choose another id`,
        { cause: err },
      );
    }
    throw err;
  }
  return prepared;
}
