import { Body, Controller, Get, Post, UseGuards } from '@nestjs/common';
import { TenantContext } from 'nestjs-pg-tenancy';
import { currentTenantId } from '../common/current-tenant.js';
import { email, oneOf, optional, text, ValidBody, type Parsed } from '../common/validation.js';
import { AccountsService } from './accounts.service.js';
import { UserAuthGuard } from '../auth/user-auth.guard.js';

const NewMember = {
  email,
  name: text({ max: 200 }),
  role: optional(oneOf('owner', 'member')),
};

/** The current tenant's members: tenant-routed, but the data lives in the shared schema. */
@UseGuards(UserAuthGuard)
@Controller('members')
export class MembersController {
  constructor(
    private readonly accounts: AccountsService,
    private readonly context: TenantContext,
  ) {}

  @Get()
  list() {
    return this.accounts.members(currentTenantId(this.context));
  }

  @Post()
  add(@Body(new ValidBody(NewMember)) input: Parsed<typeof NewMember>) {
    return this.accounts.addMember(currentTenantId(this.context), input);
  }
}
