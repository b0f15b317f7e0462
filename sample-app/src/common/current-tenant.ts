import { TenantContext, TenantContextMissingError } from 'nestjs-pg-tenancy';

/** The id of the tenant the current request (or `TenantService.run()` job) belongs to. */
export function currentTenantId(context: TenantContext): string {
  const scope = context.current;
  if (!scope) throw new TenantContextMissingError();
  return scope.tenantId;
}
