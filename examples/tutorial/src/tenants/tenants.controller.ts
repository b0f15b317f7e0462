import { BadRequestException, Body, Controller, Get, Post } from '@nestjs/common';
import { NoTenant, TenantService } from 'nestjs-pg-tenancy';

// Serves no tenant, so @NoTenant(). A real app puts a guard on it (an admin token, a role).
@Controller('tenants')
@NoTenant()
export class TenantsController {
  constructor(private readonly tenants: TenantService) {}

  @Post()
  create(@Body() body: { id?: unknown }) {
    if (typeof body?.id !== 'string') throw new BadRequestException('id must be a string');
    // Registry row, schema and every tenant migration, all or nothing.
    return this.tenants.create(body.id);
  }

  @Get()
  list() {
    return this.tenants.list();
  }
}
