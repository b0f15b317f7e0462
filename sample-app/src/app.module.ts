import { Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import { DatabaseExceptionFilter, DatabaseModule } from 'nestjs-pg-tenancy';
import { DatabaseHealthIndicator } from 'nestjs-pg-tenancy/terminus';
import { AccountsService } from './accounts/accounts.service.js';
import { MembersController } from './accounts/members.controller.js';
import { AdminTokenGuard } from './admin/admin-token.guard.js';
import { TenantStatsService } from './admin/tenant-stats.service.js';
import { TenantsAdminController } from './admin/tenants-admin.controller.js';
import { TenantsAdminService } from './admin/tenants-admin.service.js';
import { AppConfig } from './app-config.js';
import { SessionTokens } from './auth/session-tokens.js';
import { memberOfTenant, tenantOfSession } from './auth/tenant-access.js';
import { UserAuthGuard } from './auth/user-auth.guard.js';
import { AuditModule } from './audit/audit.module.js';
import { DemoData } from './demo/demo-data.js';
import { HealthController } from './health/health.controller.js';
import { migrationsFolder } from './migrations.js';
import { ProjectsController } from './projects/projects.controller.js';
import { ProjectsService } from './projects/projects.service.js';
import { TasksController } from './tasks/tasks.controller.js';
import { TasksService } from './tasks/tasks.service.js';

@Module({})
export class AppModule {
  static register(config: AppConfig, databaseUrl: string): DynamicModule {
    return {
      module: AppModule,
      imports: [
        DatabaseModule.forRoot({
          connection: databaseUrl,
          pool: { max: 10 },
          // Shared by every tenant: users, billing plans.
          schemas: { accounts: { migrations: migrationsFolder('accounts') } },
          tenancy: {
            // Applied to each tenant's schema (tenant_acme, tenant_globex, …).
            migrations: migrationsFolder('tenant'),
            // The tenant comes from the signed-in user's session, never from a header the
            // client picks, and the user must still be a member of it.
            resolver: tenantOfSession,
            authorize: memberOfTenant,
            // TENANT_TIER=pooled: new tenants share the tables of one schema instead.
            ...(config.tenantTier === 'pooled' && { pooled: { role: config.pooledRole } }),
          },
        }),
        AuditModule,
        TerminusModule,
      ],
      controllers: [
        HealthController,
        TenantsAdminController,
        ProjectsController,
        TasksController,
        MembersController,
      ],
      providers: [
        { provide: AppConfig, useValue: config },
        // Tenant errors thrown by handlers (an id taken: 409, unknown: 404) get their status;
        // an exhausted pool or a request during shutdown gets 503.
        { provide: APP_FILTER, useClass: DatabaseExceptionFilter },
        DatabaseHealthIndicator,
        AdminTokenGuard,
        SessionTokens,
        UserAuthGuard,
        AccountsService,
        TenantsAdminService,
        TenantStatsService,
        ProjectsService,
        TasksService,
        DemoData,
      ],
    };
  }
}
