// The one composition root of the tenancy services: the Nest module's providers and the CLI both
// build the registry and the service here, so the two can never be wired differently.
import { Logger, type LoggerService } from '@nestjs/common';
import type pg from 'pg';
import type { DrainController } from '../connection/drain-controller.js';
import type { QueryEnvironment } from '../core/query/query-environment.js';
import { migrationFilesLoader, type MigrationFile } from '../migrations/migration-files.js';
import { MigrationRunner } from '../migrations/migration-runner.js';
import { CitusTenancy } from './citus/citus.js';
import { TenantFleetMigrator } from './fleet/tenant-fleet-migrator.js';
import { TenantRolloutStore } from './fleet/tenant-rollout-store.js';
import { TenantProvisioner } from './provisioning/tenant-provisioner.js';
import { PooledTier } from './pooled/pooled-tier.js';
import { TierMover } from './pooled/tier-move.js';
import { TenantTemplate, templateSchemaFor } from './provisioning/tenant-template.js';
import { TenantRegistry } from './registry/tenant-registry.js';
import type { TenantContext } from './routing/tenant-context.js';
import type { ResolvedTenancyOptions } from './tenancy-options.js';
import { TenantService } from './tenant.service.js';
import { TenantCopier } from './transfer/tenant-copier.js';
import { TenantTransfer } from './transfer/tenant-transfer.js';

/** What the tenancy services are built from. */
export interface TenancyRootInput {
  /** The shared pool (the CLI), or the module's query environment over it. */
  readonly env: QueryEnvironment | pg.Pool;
  /** Settings for dedicated connections (migrations, locks, the registry listener). */
  readonly connection: pg.ClientConfig;
  readonly options: ResolvedTenancyOptions;
  readonly logger?: LoggerService;
  /** The module's drain gate; the CLI has none. */
  readonly drain?: DrainController;
}

/** The tenant registry: the cached view of the registry table, kept in sync across instances. */
export function createTenantRegistry(input: TenancyRootInput): TenantRegistry {
  return new TenantRegistry(
    input.env,
    input.connection,
    input.options,
    input.logger ?? new Logger('Tenancy'),
  );
}

/** The tenant service and every part it composes, over `registry`. */
export function createTenantService(
  input: TenancyRootInput,
  registry: TenantRegistry,
  context: TenantContext,
): TenantService {
  const { connection, options, drain } = input;
  const pool = 'pool' in input.env ? input.env.pool : input.env;
  const logger = input.logger ?? new Logger('Tenancy');
  const runner = new MigrationRunner(connection, { logger: quietLogger(logger), tracker: drain });
  const load = options.migrations ? migrationFilesLoader(options.migrations) : undefined;
  const files = (): Promise<readonly MigrationFile[]> => load?.() ?? Promise.resolve([]);
  const template =
    options.template && options.migrations
      ? new TenantTemplate(
          templateSchemaFor(options.registrySchema),
          runner,
          connection,
          files,
          logger,
          drain,
          { registrySchema: options.registrySchema, count: options.templateSpares },
        )
      : undefined;
  const citus = new CitusTenancy(pool, connection, options.citus, drain, files);
  // Clones and imports are placed as create() places a new tenant (Citus: distributed or not).
  const beforeCreateSchema = async (client: pg.ClientBase): Promise<void> => {
    await citus.beforeCreateSchema(client);
  };
  const rollouts = new TenantRolloutStore(pool, options.registrySchema);
  const pooled =
    options.pooled &&
    new PooledTier(
      options.pooled,
      registry,
      runner,
      connection,
      files,
      options.maxStalenessMs,
      drain,
    );
  const mover =
    pooled &&
    new TierMover(
      registry,
      runner,
      connection,
      files,
      pooled,
      options.registrySchema,
      options.maxStalenessMs,
      drain,
    );
  return new TenantService({
    registry,
    context,
    drain,
    template,
    citus,
    pooled,
    mover,
    provisioner: new TenantProvisioner(
      registry,
      runner,
      connection,
      files,
      logger,
      drain,
      template,
      citus,
      pooled,
    ),
    copier: new TenantCopier(
      registry,
      runner,
      connection,
      files,
      drain,
      beforeCreateSchema,
      pooled,
    ),
    transfer: new TenantTransfer(
      registry,
      runner,
      connection,
      files,
      drain,
      beforeCreateSchema,
      pooled,
    ),
    fleet: new TenantFleetMigrator(
      registry,
      runner,
      files,
      (requested) => Math.min(requested ?? options.migrationConcurrency, pool.options.max ?? 10),
      { store: rollouts, ensure: () => rollouts.ensure(connection, drain) },
      pooled,
    ),
  });
}

/** Migration progress is the service's to report: the runner's own lines would repeat it. */
function quietLogger(logger: LoggerService): LoggerService {
  return {
    log: () => undefined,
    warn: (message: unknown) => {
      logger.warn(message);
    },
    error: (message: unknown) => {
      logger.error(message);
    },
  };
}
