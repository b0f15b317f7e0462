import { Logger } from '@nestjs/common';
import cliProgress from 'cli-progress';
import type pg from 'pg';
import { PgTenancyError } from '../errors.js';
import { createPool } from '../pool/create-pool.js';
import { toSessionConfig } from '../pool/pool-options.js';
import { resolveTenancyOptions } from '../tenancy/tenancy-options.js';
import { TenantContext } from '../tenancy/tenant-context.js';
import { TenantRegistry } from '../tenancy/tenant-registry.js';
import { TenantService, type TenantMigrationSummary } from '../tenancy/tenant.service.js';
import type { PgTenancyConfig } from './cli-config.js';

const consoleLogger = {
  log: (message: unknown) => console.log(String(message)),
  warn: (message: unknown) => console.error(String(message)),
  error: (message: unknown) => console.error(String(message)),
};

/** A `TenantService` outside Nest, for the CLI. Close it with `end()`. */
export async function openTenancy(
  config: PgTenancyConfig,
): Promise<{ service: TenantService; end(): Promise<void> }> {
  if (!config.tenancy) {
    throw new PgTenancyError(
      'The config declares no `tenancy` section: add one to manage tenants from the CLI.',
    );
  }
  const tenancy = resolveTenancyOptions(config.tenancy);
  const pool: pg.Pool = createPool(config, new Logger('Tenancy'));
  const connection = toSessionConfig(config);
  const registry = new TenantRegistry(pool, connection, tenancy, consoleLogger);
  try {
    await registry.ensureTable();
    await registry.reload();
  } catch (err) {
    await pool.end();
    throw err;
  }
  return {
    service: new TenantService(
      pool,
      connection,
      tenancy,
      registry,
      new TenantContext(),
      consoleLogger,
    ),
    end: () => pool.end(),
  };
}

/** Migrates tenants with a progress bar (on a terminal) or a line per 10% (in logs). */
export async function migrateTenants(
  service: TenantService,
  only: string[] | undefined,
): Promise<TenantMigrationSummary> {
  const interactive = Boolean(process.stderr.isTTY);
  const bar = interactive
    ? new cliProgress.SingleBar(
        {
          format: 'tenants [{bar}] {value}/{total} {tenant}',
          hideCursor: true,
          stream: process.stderr,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  let started = false;
  let lastDecile = -1;
  const summary = await service.migrateAll({
    tenants: only,
    onProgress: ({ done, total, tenantId }) => {
      if (bar) {
        if (!started) bar.start(total, 0, { tenant: '' });
        started = true;
        bar.update(done, { tenant: tenantId });
        return;
      }
      const decile = Math.floor((done / total) * 10);
      if (decile !== lastDecile) {
        lastDecile = decile;
        console.log(`tenants: ${done}/${total}`);
      }
    },
  });
  bar?.stop();
  for (const { tenantId, files } of summary.applied)
    console.log(`${tenantId}: applied ${files.join(', ')}`);
  for (const { tenantId, error } of summary.failed) console.error(`${tenantId}: FAILED ${error}`);
  console.log(
    `Tenants: ${summary.applied.length} migrated, ${summary.skipped} up to date, ${summary.failed.length} failed (${summary.durationMs} ms).`,
  );
  return summary;
}

/** Prints the fleet view; returns whether any tenant needs attention (edited files or a failure). */
export async function printTenantStatus(
  service: TenantService,
  only: string[] | undefined,
): Promise<boolean> {
  const states = await service.migrationStatus(only);
  const rows = states.map((s) => [
    s.tenantId,
    s.status,
    String(s.version),
    String(s.pending),
    s.changed ? 'CHANGED' : '',
    s.lastError ?? '',
  ]);
  printTable(['tenant', 'status', 'version', 'pending', 'files', 'last error'], rows);
  const lagging = states.filter((s) => s.pending > 0).length;
  const broken = states.filter((s) => s.changed || s.lastError).length;
  console.log(
    `${states.length} tenant(s): ${lagging} with pending migrations, ${broken} needing attention.`,
  );
  return broken > 0;
}

/** Prints tenants as a table. */
export async function printTenantList(service: TenantService): Promise<void> {
  const tenants = await service.list();
  printTable(
    ['tenant', 'schema', 'status', 'created'],
    tenants.map((t) => [t.id, t.schema, t.status, t.createdAt.toISOString()]),
  );
  console.log(`${tenants.length} tenant(s).`);
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  console.log(line(header));
  for (const row of rows) console.log(line(row));
}
