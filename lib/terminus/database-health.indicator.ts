import { Injectable } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { DatabaseMonitor } from '../observability/database-monitor.js';

/** Options of {@link DatabaseHealthIndicator.isHealthy}. */
export interface DatabaseHealthOptions {
  /** A ping slower than this (including the wait for a connection) is `down`. Default: `1_000` ms. */
  timeoutMs?: number;
  /** Pool utilisation (checked out / max) considered high. Default: `0.9`. */
  highUtilisation?: number;
  /** Report `degraded` once utilisation has stayed high this long. Default: `30_000` ms. */
  degradedAfterMs?: number;
}

/**
 * A `@nestjs/terminus` health indicator for the shared pool: `up` when `SELECT 1` answers within
 * the timeout, `down` when it does not (server unreachable, pool starved), and `degraded` (still
 * serving, HTTP 200) when pool utilisation has stayed high, or when the tenant registry's view cannot be
 * proven current within `tenancy.maxStalenessMs` (its `tenantSync` detail shows mode and lag), or
 * when a streaming replica is not serving reads (the `replicas` detail shows each one's state and
 * lag). Details carry latency and pool figures.
 *
 * Import from `nestjs-pg-tenancy/terminus`; `@nestjs/terminus` is an optional peer dependency.
 *
 * @example
 * @Controller('health')
 * @NoTenant()
 * export class HealthController {
 *   constructor(private readonly health: HealthCheckService, private readonly db: DatabaseHealthIndicator) {}
 *   @Get() @HealthCheck()
 *   check() { return this.health.check([() => this.db.isHealthy('database')]); }
 * }
 */
@Injectable()
export class DatabaseHealthIndicator {
  constructor(
    private readonly indicators: HealthIndicatorService,
    private readonly monitor: DatabaseMonitor,
  ) {}

  /**
   * Pings the database and reports `up`, `down` (the ping failed or took longer than
   * `timeoutMs`), or `degraded` (HTTP 200) while the pool has stayed highly utilised; the details
   * carry the latency and pool statistics.
   */
  async isHealthy<const Key extends string>(
    key: Key,
    options: DatabaseHealthOptions = {},
  ): Promise<HealthIndicatorResult<Key>> {
    const { timeoutMs = 1_000, highUtilisation = 0.9, degradedAfterMs = 30_000 } = options;
    const indicator = this.indicators.check(key);
    const ping = await this.monitor.ping(timeoutMs);
    const pool = this.monitor.getPoolStats();
    const tenantSync = this.monitor.getTenantSync();
    const replicas = this.monitor.getReplicas();
    const details = {
      latencyMs: ping.latencyMs,
      pool,
      ...(tenantSync ? { tenantSync } : {}),
      ...(replicas ? { replicas } : {}),
    };
    if (!ping.ok)
      return indicator.down({ ...details, message: `Database ping failed: ${ping.error}` });
    const highFor = this.monitor.highUtilisationFor(highUtilisation);
    if (highFor !== undefined && highFor >= degradedAfterMs) {
      return indicator.degraded({
        ...details,
        message: `Pool utilisation has been at or above ${Math.round(highUtilisation * 100)}% for ${Math.round(highFor / 1000)} s; raise pool.max or shed load.`,
      });
    }
    if (tenantSync && !tenantSync.synced && tenantSync.mode !== 'stopped') {
      // Still correct (stale entries are re-checked against the table), but slower and worth a look.
      return indicator.degraded({
        ...details,
        message: `The tenant registry view is not proven current (${tenantSync.mode}, last proof ${tenantSync.lagMs ?? '∞'} ms ago, bound ${tenantSync.maxStalenessMs} ms); tenants are re-checked against the table meanwhile.`,
      });
    }
    const unhealthy = replicas?.filter((r) => r.state !== 'up') ?? [];
    if (unhealthy.length > 0) {
      // Reads still work (another replica or the primary serves them), but capacity is reduced.
      return indicator.degraded({
        ...details,
        message: `${unhealthy.length} of ${replicas!.length} replica(s) not serving reads: ${unhealthy.map((r) => `${r.name} ${r.state}`).join(', ')}.`,
      });
    }
    return indicator.up(details);
  }
}
