import { Module } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import { DatabaseExceptionFilter, DatabaseModule, fromHeader } from 'nestjs-pg-tenancy';
import { DatabaseHealthIndicator } from 'nestjs-pg-tenancy/terminus';
import { databaseUrl } from './database.js';
import { HealthController } from './health/health.controller.js';
import { ProjectsController } from './projects/projects.controller.js';
import { ProjectsService } from './projects/projects.service.js';
import { hasTenantKey } from './tenants/tenant-keys.js';
import { TenantsController } from './tenants/tenants.controller.js';

@Module({
  imports: [
    DatabaseModule.forRootAsync({
      useFactory: async () => ({ connection: await databaseUrl() }),
      tenancy: {
        // Applied to every tenant's schema (tenant_acme, …), relative to the working directory.
        migrations: 'migrations/tenant',
        // The header names the tenant; the hook lets the request in only with that tenant's key.
        resolver: fromHeader('x-tenant-id'),
        authorize: hasTenantKey,
      },
    }),
    TerminusModule,
  ],
  controllers: [ProjectsController, TenantsController, HealthController],
  providers: [
    ProjectsService,
    DatabaseHealthIndicator,
    // Tenant errors thrown in handlers become 400/403/404/409, "shutting down" 503.
    { provide: APP_FILTER, useClass: DatabaseExceptionFilter },
  ],
})
export class AppModule {}
