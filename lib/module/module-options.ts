import { booleanOption, describeValue, integerOption } from '../shared/option-values.js';
import { InvalidOptionsError } from '../shared/errors.js';
import { resolvePoolOptions, toPgPoolConfig, toSessionConfig } from '../connection/pool-options.js';
import { resolvePreparedStatementOptions } from '../connection/statement-cache-options.js';
import { resolveReplicaOptions } from '../connection/replicas/replica-options.js';
import type { DatabaseModuleOptions } from './database-options.interface.js';

// Options that shape the module graph: read by forRoot/forRootAsync themselves, never by a factory.
const STRUCTURAL = ['schemas', 'tenancy', 'isGlobal'] as const;

const resolved = new WeakMap<object, DatabaseModuleOptions>();

/**
 * Checks the module options once at start-up and reads numbers and booleans given as strings
 * (environment variables, `ConfigService`) as what they say: `"20"` is 20, `"false"` is false.
 * Everything the module reads goes through this, so a wrong value fails start-up with a message
 * naming the option and what was received, not later with a surprising behaviour.
 *
 * @throws InvalidOptionsError
 */
export function resolveModuleOptions(options: DatabaseModuleOptions): DatabaseModuleOptions {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionsError(
      `DatabaseModule options must be an object (from forRootAsync, what useFactory or createDatabaseOptions() returns), received ${describeValue(options)}.`,
    );
  }
  const hit = resolved.get(options);
  if (hit) return hit;
  const misplaced = STRUCTURAL.filter(
    (key) => (options as Record<string, unknown>)[key] !== undefined,
  );
  if (misplaced.length > 0) {
    const names = misplaced.map((k) => `"${k}"`).join(' and ');
    throw new InvalidOptionsError(
      `${names} came from the forRootAsync factory, where ${misplaced.length > 1 ? 'they are' : 'it is'} ignored: ` +
        'these options decide which providers exist, so they must be known before the factory runs. ' +
        `Pass ${misplaced.length > 1 ? 'them' : 'it'} beside the factory: DatabaseModule.forRootAsync({ imports, inject, useFactory, ${misplaced.map((k) => `${k}: …`).join(', ')} }).`,
    );
  }
  const out: DatabaseModuleOptions = { ...options };
  if (options.pool !== undefined) out.pool = resolvePoolOptions(options.pool);
  if (options.preparedStatements !== undefined) {
    out.preparedStatements = resolvePreparedStatementOptions(options.preparedStatements);
  }
  for (const key of [
    'migrationStatementTimeoutMs',
    'migrationLockTimeoutMs',
    'slowQueryMs',
    'slowQueryLimit',
  ] as const) {
    if (options[key] !== undefined) out[key] = integerOption(options[key], key);
  }
  for (const key of ['migrateOnStartup', 'logQueryParams'] as const) {
    if (options[key] !== undefined) out[key] = booleanOption(options[key], key);
  }
  if (options.shutdown?.drainTimeoutMs !== undefined) {
    out.shutdown = {
      ...options.shutdown,
      drainTimeoutMs: integerOption(options.shutdown.drainTimeoutMs, 'shutdown.drainTimeoutMs'),
    };
  }
  if (options.metrics !== undefined) {
    const { maxTenantLabels, tenantLabel } = options.metrics;
    out.metrics = {
      ...options.metrics,
      ...(maxTenantLabels !== undefined
        ? { maxTenantLabels: integerOption(maxTenantLabels, 'metrics.maxTenantLabels') }
        : {}),
      ...(tenantLabel !== undefined
        ? { tenantLabel: booleanOption(tenantLabel, 'metrics.tenantLabel') }
        : {}),
    };
  }
  if (
    options.missingMigrations !== undefined &&
    options.missingMigrations !== 'warn' &&
    options.missingMigrations !== 'fail'
  ) {
    throw new InvalidOptionsError(
      `missingMigrations must be 'warn' or 'fail', received ${describeValue(options.missingMigrations)}.`,
    );
  }
  if (options.replicas !== undefined) {
    const replicas = resolveReplicaOptions(options.replicas);
    replicas.connections.forEach((connection, i) => {
      try {
        toPgPoolConfig({ connection });
      } catch (err) {
        throw new InvalidOptionsError(`replicas.connections[${i}]: ${(err as Error).message}`);
      }
    });
    out.replicas = replicas;
  }
  // Parses the connection URLs now, so a malformed one fails start-up with a typed error.
  toPgPoolConfig(out);
  toSessionConfig(out);
  Object.freeze(out);
  resolved.set(options, out);
  resolved.set(out, out);
  return out;
}
