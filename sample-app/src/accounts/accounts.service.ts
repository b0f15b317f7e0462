import { Injectable } from '@nestjs/common';
import { InjectSchemaDb, SchemaDb } from 'nestjs-pg-tenancy';

export interface Plan {
  id: string;
  name: string;
  /** `null`: unlimited. */
  maxProjects: number | null;
}

export interface Member {
  id: number;
  email: string;
  name: string;
  role: 'owner' | 'member';
}

/**
 * The shared `accounts` schema: billing plans, which plan each tenant is on, and users with
 * their tenant memberships. A named schema, so it is the same for every request whatever the
 * tenant; the tenant is always passed explicitly.
 */
@Injectable()
export class AccountsService {
  constructor(@InjectSchemaDb('accounts') private readonly db: SchemaDb) {}

  plans(): Promise<Plan[]> {
    return this.db.fetchAll<Plan>(
      'SELECT id, name, max_projects AS "maxProjects" FROM {{tables.plans}} ORDER BY id',
    );
  }

  plan(id: string): Promise<Plan | null> {
    return this.db.fetchOne<Plan>(
      'SELECT id, name, max_projects AS "maxProjects" FROM {{tables.plans}} WHERE id = $1',
      [id],
    );
  }

  /** The tenant's plan; a tenant without a subscription is on the free plan. */
  async planOf(tenantId: string): Promise<Plan> {
    const plan = await this.db.fetchOne<Plan>(
      `SELECT p.id, p.name, p.max_projects AS "maxProjects"
         FROM {{tables.plans}} p
        WHERE p.id = coalesce((SELECT plan_id FROM {{tables.subscriptions}} WHERE tenant_id = $1), 'free')`,
      [tenantId],
    );
    return plan!;
  }

  /** Tenant id → plan id, for listing tenants. */
  async subscriptions(): Promise<Map<string, string>> {
    const rows = await this.db.fetchAll<{ tenantId: string; planId: string }>(
      'SELECT tenant_id AS "tenantId", plan_id AS "planId" FROM {{tables.subscriptions}}',
    );
    return new Map(rows.map((r) => [r.tenantId, r.planId]));
  }

  async subscribe(tenantId: string, planId: string): Promise<void> {
    await this.db.execute(
      `INSERT INTO {{tables.subscriptions}} (tenant_id, plan_id) VALUES ($1, $2)
       ON CONFLICT (tenant_id) DO UPDATE SET plan_id = excluded.plan_id, started_at = now()`,
      [tenantId, planId],
    );
  }

  /** Whether user `userId` is (still) a member of the tenant. */
  async isMember(tenantId: string, userId: number): Promise<boolean> {
    return (
      (await this.db.fetchValue<boolean>(
        'SELECT EXISTS (SELECT 1 FROM {{tables.memberships}} WHERE tenant_id = $1 AND user_id = $2)',
        [tenantId, userId],
      )) === true
    );
  }

  members(tenantId: string): Promise<Member[]> {
    return this.db.fetchAll<Member>(
      `SELECT u.id, u.email, u.name, m.role
         FROM {{tables.memberships}} m JOIN {{tables.users}} u ON u.id = m.user_id
        WHERE m.tenant_id = $1
        ORDER BY u.id`,
      [tenantId],
    );
  }

  /** The member with this e-mail address, added to the tenant (as a member) if not one yet. */
  ensureMember(tenantId: string, input: { email: string; name: string }): Promise<Member> {
    return this.db.transaction(async (tx) => {
      const user = await tx.fetchOne<Omit<Member, 'role'>>(
        `INSERT INTO {{tables.users}} (email, name) VALUES ($1, $2)
         ON CONFLICT ((lower(email))) DO UPDATE SET email = {{tables.users}}.email
         RETURNING id, email, name`,
        [input.email, input.name],
      );
      await tx.execute(
        `INSERT INTO {{tables.memberships}} (tenant_id, user_id) VALUES ($1, $2)
         ON CONFLICT (tenant_id, user_id) DO NOTHING`,
        [tenantId, user!.id],
      );
      const role = await tx.fetchValue<Member['role']>(
        'SELECT role FROM {{tables.memberships}} WHERE tenant_id = $1 AND user_id = $2',
        [tenantId, user!.id],
      );
      return { ...user!, role: role! };
    });
  }

  /** Adds a user (created on first sight of the e-mail address) to a tenant, or changes their role. */
  addMember(
    tenantId: string,
    input: { email: string; name: string; role?: Member['role'] },
  ): Promise<Member> {
    return this.db.transaction(async (tx) => {
      const user = await tx.fetchOne<Omit<Member, 'role'>>(
        `INSERT INTO {{tables.users}} (email, name) VALUES ($1, $2)
         ON CONFLICT ((lower(email))) DO UPDATE SET name = excluded.name
         RETURNING id, email, name`,
        [input.email, input.name],
      );
      const role = await tx.fetchValue<Member['role']>(
        `INSERT INTO {{tables.memberships}} (tenant_id, user_id, role) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role
         RETURNING role`,
        [tenantId, user!.id, input.role ?? 'member'],
      );
      return { ...user!, role: role! };
    });
  }
}
