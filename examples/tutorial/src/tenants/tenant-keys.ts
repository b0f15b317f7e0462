import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ExecutionContext } from '@nestjs/common';
import type { ModuleRef } from '@nestjs/core';
import { TenantService } from 'nestjs-pg-tenancy';

const sha256 = (key: string) => createHash('sha256').update(key).digest();

/** A new API key for a tenant, and what to keep of it: only its hash goes into the registry. */
export function newApiKey(): { apiKey: string; metadata: { apiKeyHash: string } } {
  const apiKey = randomBytes(24).toString('base64url');
  return { apiKey, metadata: { apiKeyHash: sha256(apiKey).toString('hex') } };
}

/**
 * `tenancy.authorize`: the request enters the tenant its x-tenant-id header names only with that
 * tenant's key in x-api-key. Anything else is a 403, for unknown tenants too.
 */
export async function hasTenantKey(
  tenantId: string,
  ctx: ExecutionContext,
  moduleRef: ModuleRef,
): Promise<boolean> {
  const key: unknown = ctx.switchToHttp().getRequest().headers['x-api-key'];
  if (typeof key !== 'string') return false;
  const tenant = await moduleRef.get(TenantService, { strict: false }).get(tenantId);
  const hash = tenant?.metadata.apiKeyHash;
  return typeof hash === 'string' && timingSafeEqual(sha256(key), Buffer.from(hash, 'hex'));
}
