// The pooled tier's own work: its managed role, its schema (the tenant migration files, each
// adapted for sharing), and placing a tenant in it or taking one out.
import type pg from 'pg';
import type { SessionTracker } from '../../connection/sessions.js';
import { inTransaction, openSession } from '../../connection/sessions.js';
import { NO_SCOPE, scopeStatement } from '../../connection/row-scope.js';
import type { MigrationFile } from '../../migrations/migration-files.js';
import type { MigrationRunner } from '../../migrations/migration-runner.js';
import type { MigrationResult } from '../../migrations/migration-types.js';
import { MIGRATIONS_TABLE, readMigrationStatus } from '../../migrations/migration-history.js';
import { adaptPooledSchema } from '../../catalog/pooled-adaptation.js';
import { tablesInInsertOrder } from '../../catalog/schema-tables.js';
import { qualifiedName, quoteIdentifier } from '../../shared/identifiers.js';
import type { TenantRegistry } from '../registry/tenant-registry.js';
import type { TenantRow } from '../registry/tenant-registry-store.js';
import { lockTenant } from '../tenant-locks.js';
import { migrationsDigest } from '../tenant-migrations-digest.js';
import { TenantAlreadyExistsError } from '../tenant.errors.js';
import type { ResolvedPooledTier } from '../tenant-tier.js';
import { PooledRoleUnsafeError } from './pooled.errors.js';

/**
 * The pooled tier of one database: tenants whose rows share the tables of one schema, held to
 * each tenant by row-level security under a managed role.
 */
export class PooledTier {
  #ready: Promise<MigrationResult> | undefined;

  constructor(
    readonly options: ResolvedPooledTier,
    private readonly registry: TenantRegistry,
    private readonly runner: MigrationRunner,
    private readonly connection: pg.ClientConfig,
    private readonly files: () => Promise<readonly MigrationFile[]>,
    /** The registry's `maxStalenessMs`: how long every instance may still serve a change's past. */
    private readonly settleMs: number,
    private readonly tracker?: SessionTracker,
  ) {}

  /** Waits out the registry's staleness bound: after it, no instance serves what changed before. */
  settle(): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, this.settleMs));
  }

  /**
   * Brings the pooled schema to the tenant migration files: once for every pooled tenant. Each
   * file is adapted for sharing in its own transaction (see `adaptPooledSchema`); the role is
   * created first. The registry rows of pooled tenants then record the files applied.
   */
  async migrate(): Promise<MigrationResult> {
    const { schema, role, column } = this.options;
    const files = await this.files();
    await this.#withSession((client) => ensurePooledRole(client, role));
    const result = await this.runner.migrate(schema, files, {
      afterFile: async (client) => {
        await adaptPooledSchema(client, schema, { column, role });
      },
    });
    await this.registry.store.recordPooledMigrated(
      files.length,
      migrationsDigest(files, files.length),
    );
    return result;
  }

  /** `migrate()`, once per process unless it failed: what a create waits for. */
  ready(): Promise<MigrationResult> {
    this.#ready ??= this.migrate().catch((err: unknown) => {
      this.#ready = undefined;
      throw err;
    });
    return this.#ready;
  }

  /**
   * Places tenant `id` in the pooled tier: one transaction inserts its row, `active`, under its
   * lock. Nothing else exists for it until it writes rows. Its reserved schema name is the one
   * a move to the `schema` tier creates.
   *
   * @throws TenantAlreadyExistsError
   */
  async create(id: string, metadata: Record<string, unknown>): Promise<TenantRow> {
    const schema = this.registry.schemaFor(id);
    const files = await this.files();
    await this.ready();
    return this.#withSession((client) =>
      inTransaction(client, async () => {
        await lockTenant(client, schema);
        const { store } = this.registry;
        if (!(await store.insertProvisioning(client, { id, schema, metadata, tier: 'pooled' }))) {
          throw new TenantAlreadyExistsError(id, (await store.one(id, client))?.status);
        }
        const applied = await this.#applied(client);
        return store.recordCreated(client, id, 'active', applied, migrationsDigest(files, applied));
      }),
    );
  }

  /**
   * Deletes every row of tenant `id` from the pooled tables (not the schema's migration history), children first, in the open
   * transaction on `client`, held to the tenant like its own statements.
   */
  async removeRows(client: pg.ClientBase, id: string): Promise<void> {
    const { schema, role } = this.options;
    const tables = await tablesInInsertOrder(client, schema);
    const scoped = scopeStatement({ role, tenantId: id });
    await client.query(scoped.text, scoped.values);
    for (const table of tables.reverse()) {
      // The schema's own migration history belongs to no tenant.
      if (table.name === MIGRATIONS_TABLE) continue;
      await client.query(`DELETE FROM ${qualifiedName(schema, table.name)}`);
    }
    const unscoped = scopeStatement(NO_SCOPE);
    await client.query(unscoped.text, unscoped.values);
  }

  /** How many tenant migration files the pooled schema has applied. */
  async #applied(client: pg.ClientBase): Promise<number> {
    const files = await this.files();
    const status = await readMigrationStatus(client, this.options.schema, files);
    return status.applied.length;
  }

  async #withSession<T>(fn: (client: pg.ClientBase) => Promise<T>): Promise<T> {
    const session = await openSession(this.connection, {
      tracker: this.tracker,
      applicationName: 'nestjs-pg-tenancy:pooled',
    });
    try {
      return await fn(session.client);
    } finally {
      await session.close();
    }
  }
}

/**
 * Creates the managed role when missing (`NOLOGIN NOBYPASSRLS`, owning nothing) and makes the
 * connecting user a member, so it may switch to it. Two instances racing to create it both
 * succeed. A role of that name that is a superuser or bypasses row-level security is refused.
 *
 * @throws PooledRoleUnsafeError
 */
export async function ensurePooledRole(client: pg.ClientBase, role: string): Promise<void> {
  const name = `'${role}'`; // validated identifier characters only
  await client.query(`DO $do$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${name}) THEN
      BEGIN
        CREATE ROLE ${quoteIdentifier(role)} NOLOGIN NOBYPASSRLS;
      EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
      END;
    END IF;
    IF NOT pg_has_role(current_user, ${name}, 'MEMBER') THEN
      EXECUTE format('GRANT %I TO %I', ${name}, current_user);
    END IF;
  END $do$`);
  const { rows } = await client.query<{ unsafe: boolean }>(
    'SELECT rolsuper OR rolbypassrls AS unsafe FROM pg_roles WHERE rolname = $1',
    [role],
  );
  if (rows[0]?.unsafe) throw new PooledRoleUnsafeError(role);
}
