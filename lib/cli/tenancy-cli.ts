import { Logger } from '@nestjs/common';
import type pg from 'pg';
import { PgTenancyError } from '../shared/errors.js';
import { createPool } from '../connection/create-pool.js';
import { toSessionConfig } from '../connection/pool-options.js';
import { resolveTenancyOptions } from '../tenancy/tenancy-options.js';
import { TenantContext } from '../tenancy/routing/tenant-context.js';
import { createTenantRegistry, createTenantService } from '../tenancy/tenancy-root.js';
import type { TenantService } from '../tenancy/tenant.service.js';
import type { TenantMigrationSummary } from '../tenancy/fleet/tenant-fleet-migrator.js';
import type {
  MigrationWaveOptions,
  MigrationWaveSummary,
} from '../tenancy/fleet/migration-waves.js';
import type { PgTenancyConfig } from './cli-config.js';
import { createProgress, type Progress } from './progress.js';

const consoleLogger = {
  log: (message: unknown) => console.log(String(message)),
  warn: (message: unknown) => console.error(String(message)),
  error: (message: unknown) => console.error(String(message)),
};

/**
 * A `TenantService` outside Nest, for the CLI. Close it with `end()`. With `readOnly`, nothing is
 * created or upgraded: a database without a registry is a `RegistryMissingError`.
 */
export async function openTenancy(
  config: PgTenancyConfig,
  options: { readOnly?: boolean } = {},
): Promise<{ service: TenantService; end(): Promise<void> }> {
  if (!config.tenancy) {
    throw new PgTenancyError(
      'The config declares no `tenancy` section: add one to manage tenants from the CLI.',
    );
  }
  const tenancy = resolveTenancyOptions(config.tenancy);
  const pool: pg.Pool = createPool(config, new Logger('Tenancy'));
  const connection = toSessionConfig(config);
  const input = { env: pool, connection, options: tenancy, logger: consoleLogger };
  const registry = createTenantRegistry(input);
  try {
    if (options.readOnly) await registry.store.assertExists();
    else await registry.ensureTable();
  } catch (err) {
    await pool.end();
    throw err;
  }
  return {
    service: createTenantService(input, registry, new TenantContext()),
    end: () => pool.end(),
  };
}

/** Migrates tenants with a progress bar (on a terminal) or a line per 10% (in logs), on stderr. */
export async function migrateTenants(
  service: TenantService,
  only: string[] | undefined,
  waves: MigrationWaveOptions = {},
): Promise<TenantMigrationSummary> {
  let progress: Progress | undefined;
  const summary = await service.migrateAll({
    ...waves,
    tenants: only,
    onProgress: ({ total, tenantId }) => {
      progress ??= createProgress('tenants', total);
      progress.tick(tenantId);
    },
  });
  progress?.stop();
  for (const { tenantId, files } of summary.applied)
    console.log(`${tenantId}: applied ${files.join(', ')}`);
  for (const { tenantId, error } of summary.failed) console.error(`${tenantId}: FAILED ${error}`);
  const { pooled } = summary;
  if (pooled?.error)
    console.error(`Pooled schema ${pooled.schema}: FAILED ${pooled.error.message}`);
  else if (pooled) {
    console.log(
      `Pooled schema ${pooled.schema} (${pooled.tenants} tenant(s)): ${pooled.files.length > 0 ? `applied ${pooled.files.join(', ')}` : 'up to date'}`,
    );
  }
  if (summary.waves.length > 1 || summary.stopped) {
    for (const w of summary.waves) console.log(waveLine(w));
  }
  if (summary.stopped) {
    console.error(
      `Stopped in wave ${summary.stopped.wave}: ${summary.stopped.reason === 'canary-failed' ? 'a canary tenant failed' : 'the failure limit was reached'}; ${summary.notAttempted.length} tenant(s) not attempted. Fix the cause and run again: the rollout resumes there.`,
    );
  }
  console.log(
    `Tenants: ${summary.applied.length} migrated, ${summary.skipped} up to date, ${summary.failed.length} failed (${summary.durationMs} ms).`,
  );
  return summary;
}

/** Prints the fleet view; returns whether any tenant needs attention (edited files or a failure). */
export async function printTenantStatus(
  service: TenantService,
  only: string[] | undefined,
  json = false,
): Promise<boolean> {
  const states = await service.migrationStatus(only);
  const broken = states.filter((s) => s.changed || s.missing > 0 || s.lastError).length;
  if (json) {
    console.log(JSON.stringify(states, null, 2));
    return broken > 0;
  }
  const rows = states.map((s) => [
    s.tenantId,
    s.status,
    String(s.version),
    String(s.pending),
    [s.changed ? 'CHANGED' : '', s.missing > 0 ? `${s.missing} MISSING` : '']
      .filter(Boolean)
      .join(', '),
    s.wave === null ? '' : `${s.wave}${s.wave === 0 ? ' (canary)' : ''}`,
    s.rolloutOutcome ?? '',
    s.tier,
    s.lastError ?? '',
  ]);
  printTable(
    ['tenant', 'status', 'version', 'pending', 'files', 'wave', 'outcome', 'tier', 'last error'],
    rows,
  );
  const rollout = await service.migrationRollout();
  if (rollout) {
    console.log(
      `Rollout of ${rollout.files} file(s): ${rollout.state}${rollout.stopReason ? ` (${rollout.stopReason})` : ''}, last wave ${rollout.lastWave}, updated ${rollout.updatedAt.toISOString()}.`,
    );
    for (const w of rollout.waves) console.log(waveLine(w));
  }
  const lagging = states.filter((s) => s.pending > 0).length;
  console.log(
    `${states.length} tenant(s): ${lagging} with pending migrations, ${broken} needing attention.`,
  );
  return broken > 0;
}

/** Prints tenants as a table, or as a JSON array. */
export async function printTenantList(service: TenantService, json = false): Promise<void> {
  const tenants = await service.list();
  if (json) {
    console.log(JSON.stringify(tenants, null, 2));
    return;
  }
  printTable(
    ['tenant', 'schema', 'status', 'tier', 'created'],
    tenants.map((t) => [t.id, t.schema, t.status, t.tier, t.createdAt.toISOString()]),
  );
  const unfinished = tenants.filter((t) => t.status === 'provisioning' || t.status === 'dropping');
  console.log(
    `${tenants.length} tenant(s).` +
      (unfinished.length > 0
        ? ` ${unfinished.length} being created or dropped (or left so by a crash): \`tenants repair <id>\` finishes one.`
        : ''),
  );
}

function waveLine(
  w: Omit<MigrationWaveSummary, 'tenants' | 'notAttempted'> & { notAttempted?: number },
): string {
  return (
    `  wave ${w.wave}${w.wave === 0 ? ' (canary)' : ''}: ${w.applied} applied, ${w.upToDate} up to date, ${w.failed} failed, ${w.gone} gone` +
    (w.notAttempted ? `, ${w.notAttempted} not attempted` : '')
  );
}

/** Prints rows under a header, in aligned columns. */
export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  console.log(line(header));
  for (const row of rows) console.log(line(row));
}
