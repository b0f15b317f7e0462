import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { NoTenant } from 'nestjs-pg-tenancy';
import { DatabaseHealthIndicator } from 'nestjs-pg-tenancy/terminus';

@Controller('health')
@NoTenant()
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly database: DatabaseHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.database.isHealthy('database', { timeoutMs: 1_000 })]);
  }
}
