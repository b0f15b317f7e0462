import { BadRequestException, Body, Controller, Get, Post } from '@nestjs/common';
import { NoTenant, TenantService } from 'nestjs-pg-tenancy';
import { newApiKey } from './tenant-keys.js';

// Serves no tenant, so @NoTenant(). A real app puts a guard on it (an admin token, a role).
@Controller('tenants')
@NoTenant()
export class TenantsController {
  constructor(private readonly tenants: TenantService) {}

  @Post()
  async create(@Body() body: { id?: unknown }) {
    if (typeof body?.id !== 'string') throw new BadRequestException('id must be a string');
    const { apiKey, metadata } = newApiKey();
    // Registry row (with the key's hash), schema and every tenant migration, all or nothing.
    const tenant = await this.tenants.create(body.id, { metadata });
    // The only time the key is shown: the registry keeps its hash alone.
    return { ...tenant, apiKey };
  }

  @Get()
  list() {
    return this.tenants.list();
  }
}
