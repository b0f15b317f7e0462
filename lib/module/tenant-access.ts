import { HttpException, type ExecutionContext } from '@nestjs/common';
import type { ModuleRef } from '@nestjs/core';
import type { ResolvedTenancyOptions } from '../tenancy/tenancy-options.js';
import { InvalidTenantIdError, TenantAccessDeniedError } from '../tenancy/tenant.errors.js';

/**
 * Runs `tenancy.authorize` for a request's tenant id, before the tenant is looked up: a refused
 * caller learns nothing about whether the tenant exists, and none of its SQL runs.
 *
 * @throws InvalidTenantIdError (400) for a malformed id, TenantAccessDeniedError (403) when the
 *   hook says anything but `true` or throws; a Nest `HttpException` from the hook passes through.
 */
export async function authorizeTenant(
  options: ResolvedTenancyOptions,
  tenantId: string,
  context: ExecutionContext,
  moduleRef: ModuleRef,
): Promise<void> {
  const authorize = options.authorize;
  if (authorize === undefined) return;
  // The hook only ever sees ids that could name a tenant.
  if (typeof tenantId !== 'string' || !options.idPattern.test(tenantId)) {
    throw new InvalidTenantIdError(options.idPattern);
  }
  let allowed: unknown;
  try {
    allowed = await authorize(tenantId, context, moduleRef);
  } catch (err) {
    if (err instanceof HttpException) throw err;
    throw new TenantAccessDeniedError(tenantId, { cause: err });
  }
  if (allowed !== true) throw new TenantAccessDeniedError(tenantId);
}
