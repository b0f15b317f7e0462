import type pg from 'pg';
import type { MigrationFile } from '../../migrations/migration-files.js';
import type { MigrationRunner } from '../../migrations/migration-runner.js';
import { withoutTimeouts } from '../../connection/pool-options.js';
import { openSession, type Session, type SessionTracker } from '../../connection/sessions.js';
import { migrationsDigest } from '../tenant-migrations-digest.js';
import { reserveTenant } from '../provisioning/reserve-tenant.js';
import type { TenantRegistry } from '../registry/tenant-registry.js';
import type { PooledTier } from '../pooled/pooled-tier.js';
import { statesLeadingTo } from '../tenant-state.js';

/** Progress of a copy (clone, export, import), reported after each table. */
export interface TenantCopyProgress {
  /** The table just copied. */
  readonly table: string;
  /** Rows it held. */
  readonly rows: number;
  /** Tables copied so far, this one included. */
  readonly done: number;
  /** Tables to copy. */
  readonly total: number;
}

/**
 * Inserts tenant `id`'s row as `provisioning` and creates its schema with the first `files`
 * replayed into it, in the open transaction on `client`, under the tenant's lock.
 *
 * @throws TenantAlreadyExistsError, or an `Error` when the schema already exists.
 */
export async function startTenant(
  client: pg.ClientBase,
  registry: TenantRegistry,
  runner: MigrationRunner,
  tenant: { id: string; schema: string; metadata: Record<string, unknown> },
  files: readonly MigrationFile[],
  beforeCreateSchema?: (client: pg.ClientBase) => Promise<void>,
): Promise<void> {
  await reserveTenant(client, registry, tenant, beforeCreateSchema);
  const later = files.find((f) => !f.transactional);
  if (later) {
    throw new Error(
      `migration ${later.name} is marked no-transaction and cannot be replayed inside the copy's transaction; create the tenant and copy its data with SQL instead`,
    );
  }
  await runner.applyInTransaction(client, tenant.schema, files);
}

/** Moves a `provisioning` tenant to `active` with its migration version, in the open transaction. */
export async function finishTenant(
  client: pg.ClientBase,
  registry: TenantRegistry,
  id: string,
  files: readonly MigrationFile[],
  version: number,
): Promise<void> {
  await registry.store.activate(
    id,
    version,
    migrationsDigest(files, version),
    client,
    statesLeadingTo('active'),
  );
}

/**
 * What clones, renames, exports and imports share: the registry, the migration runner and files,
 * and their own connections, opened without statement or lock timeouts (copies run long).
 */
export abstract class TenantCopyJob {
  readonly #connection: pg.ClientConfig;

  constructor(
    protected readonly registry: TenantRegistry,
    protected readonly runner: MigrationRunner,
    connection: pg.ClientConfig,
    protected readonly files: () => Promise<readonly MigrationFile[]>,
    private readonly tracker?: SessionTracker,
    /** Runs before a new tenant's `CREATE SCHEMA` (Citus placement: distributed or local). */
    protected readonly beforeCreateSchema?: (client: pg.ClientBase) => Promise<void>,
    /** The pooled tier, when on. */
    protected readonly pooled?: PooledTier,
  ) {
    this.#connection = withoutTimeouts(connection);
  }

  /** A connection of the job's own, counted by the shutdown drain. */
  protected session(job: string): Promise<Session> {
    return openSession(this.#connection, {
      tracker: this.tracker,
      applicationName: `nestjs-pg-tenancy:${job}`,
    });
  }
}
