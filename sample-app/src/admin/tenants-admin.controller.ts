import { Body, Controller, Get, HttpCode, Param, Post, UseGuards } from '@nestjs/common';
import { NoTenant } from 'nestjs-pg-tenancy';
import { AuditService } from '../audit/audit.service.js';
import { email, optional, text, ValidBody, type Parsed } from '../common/validation.js';
import { AdminTokenGuard } from './admin-token.guard.js';
import { TenantStatsService } from './tenant-stats.service.js';
import { TenantsAdminService } from './tenants-admin.service.js';

const NewTenant = {
  // The library checks the id itself (tenancy.idPattern) and answers 400 when it is malformed.
  id: text({ max: 40 }),
  name: optional(text({ max: 200 })),
  plan: optional(text({ max: 40 })),
};

const NewSession = {
  email,
  name: optional(text({ max: 200 })),
};

/** The operator's API: no tenant (`@NoTenant()`), a bearer token instead. */
@Controller('admin')
@NoTenant()
@UseGuards(AdminTokenGuard)
export class TenantsAdminController {
  constructor(
    private readonly tenants: TenantsAdminService,
    private readonly stats: TenantStatsService,
    private readonly audit: AuditService,
  ) {}

  @Post('tenants')
  create(@Body(new ValidBody(NewTenant)) input: Parsed<typeof NewTenant>) {
    return this.tenants.create(input);
  }

  @Get('tenants')
  list() {
    return this.tenants.list();
  }

  @Post('tenants/:id/suspend')
  @HttpCode(200)
  suspend(@Param('id') id: string) {
    return this.tenants.suspend(id);
  }

  @Post('tenants/:id/resume')
  @HttpCode(200)
  resume(@Param('id') id: string) {
    return this.tenants.resume(id);
  }

  /** A session token for a user of the tenant (a stand-in for your sign-in flow). */
  @Post('tenants/:id/sessions')
  openSession(
    @Param('id') id: string,
    @Body(new ValidBody(NewSession)) input: Parsed<typeof NewSession>,
  ) {
    return this.tenants.openSession(id, input);
  }

  @Get('stats')
  tenantStats() {
    return this.stats.collect();
  }

  @Get('audit')
  recent() {
    return this.audit.recent();
  }
}
