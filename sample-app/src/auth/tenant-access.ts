import type { ExecutionContext } from '@nestjs/common';
import type { ModuleRef } from '@nestjs/core';
import { fromUser, type TenantAuthorizer } from 'nestjs-pg-tenancy';
import { AccountsService } from '../accounts/accounts.service.js';
import type { SessionUser } from './session-tokens.js';

/** The tenant of a request is the one its verified session was opened for. */
export const tenantOfSession = fromUser<SessionUser>('tenant');

/**
 * A session stays valid for hours, but membership can end sooner: every tenant request checks
 * that its user is still a member. Runs before any tenant SQL; anything but `true` is a 403.
 */
export const memberOfTenant: TenantAuthorizer = async (
  tenantId: string,
  ctx: ExecutionContext,
  moduleRef: ModuleRef,
) => {
  const user = ctx.switchToHttp().getRequest<{ user?: SessionUser }>().user;
  if (!user || user.tenant !== tenantId) return false;
  return moduleRef.get(AccountsService, { strict: false }).isMember(tenantId, user.id);
};
