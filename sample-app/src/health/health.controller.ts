import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { NoTenant } from 'nestjs-pg-tenancy';
import { DatabaseHealthIndicator } from 'nestjs-pg-tenancy/terminus';

/**
 * Readiness through `@nestjs/terminus`: 200 while PostgreSQL answers (`degraded`, still 200,
 * when the pool has stayed nearly full), 503 when it does not — and 503 during shutdown, so a
 * load balancer stops sending traffic here.
 */
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
