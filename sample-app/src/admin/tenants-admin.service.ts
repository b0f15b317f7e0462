import { BadRequestException, Injectable } from '@nestjs/common';
import { TenantNotFoundError, TenantService, type TenantInfo } from 'nestjs-pg-tenancy';
import { AccountsService } from '../accounts/accounts.service.js';
import { AppConfig } from '../app-config.js';
import { AuditService } from '../audit/audit.service.js';
import { SessionTokens } from '../auth/session-tokens.js';

export interface TenantView {
  id: string;
  name: string;
  plan: string;
  status: TenantInfo['status'];
  createdAt: Date;
}

/** Tenant lifecycle as the admin API offers it: the library's registry plus a billing plan. */
@Injectable()
export class TenantsAdminService {
  constructor(
    private readonly tenants: TenantService,
    private readonly accounts: AccountsService,
    private readonly audit: AuditService,
    private readonly sessions: SessionTokens,
    private readonly config: AppConfig,
  ) {}

  /**
   * Opens a session for a user in a tenant (adding them as a member if they are not one): the
   * token the tenant routes need. Stands in for a real sign-in flow.
   */
  async openSession(
    tenantId: string,
    input: { email: string; name?: string },
  ): Promise<{
    token: string;
    expiresAt: Date;
    user: { id: number; email: string; role: string };
  }> {
    if (!(await this.tenants.get(tenantId))) throw new TenantNotFoundError(tenantId);
    const member = await this.accounts.ensureMember(tenantId, {
      email: input.email,
      name: input.name ?? input.email,
    });
    await this.audit.record('session.open', tenantId, { user: member.id });
    const { token, expiresAt } = this.sessions.issue({
      id: member.id,
      email: member.email,
      tenant: tenantId,
    });
    return { token, expiresAt, user: { id: member.id, email: member.email, role: member.role } };
  }

  /**
   * Creates the tenant (registry row, schema `tenant_<id>`, every tenant migration; with
   * `TENANT_TIER=pooled`, its registry row only, its rows going to the shared tables) and
   * subscribes it to a plan. The tenant is usable by the next request, on every instance.
   */
  async create(input: { id: string; name?: string; plan?: string }): Promise<TenantView> {
    const planId = input.plan ?? 'free';
    if (!(await this.accounts.plan(planId))) {
      const plans = (await this.accounts.plans()).map((p) => p.id);
      throw new BadRequestException(`Unknown plan; choose one of ${plans.join(', ')}.`);
    }
    const tenant = await this.tenants.create(input.id, {
      metadata: { name: input.name ?? input.id },
      tier: this.config.tenantTier,
    });
    try {
      await this.accounts.subscribe(tenant.id, planId);
    } catch (err) {
      await this.tenants.drop(tenant.id);
      throw err;
    }
    await this.audit.record('tenant.create', tenant.id, { plan: planId });
    return view(tenant, planId);
  }

  async list(): Promise<TenantView[]> {
    const [tenants, plans] = await Promise.all([
      this.tenants.list(),
      this.accounts.subscriptions(),
    ]);
    return tenants.map((tenant) => view(tenant, plans.get(tenant.id) ?? 'free'));
  }

  async suspend(id: string): Promise<TenantView> {
    const tenant = await this.tenants.suspend(id);
    await this.audit.record('tenant.suspend', id);
    return view(tenant, (await this.accounts.planOf(id)).id);
  }

  async resume(id: string): Promise<TenantView> {
    const tenant = await this.tenants.resume(id);
    await this.audit.record('tenant.resume', id);
    return view(tenant, (await this.accounts.planOf(id)).id);
  }
}

function view(tenant: TenantInfo, plan: string): TenantView {
  const name = tenant.metadata.name;
  return {
    id: tenant.id,
    name: typeof name === 'string' ? name : tenant.id,
    plan,
    status: tenant.status,
    createdAt: tenant.createdAt,
  };
}
