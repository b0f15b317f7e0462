// The pooled tier's own work: its managed role, its schema (the tenant migration files, each
// adapted for sharing), and placing a tenant in it or taking one out.
import type pg from 'pg';
import type { SessionTracker } from '../../connection/sessions.js';
import { inTransaction, openSession } from '../../connection/sessions.js';
import { NO_SCOPE, scopeStatement } from '../../connection/row-scope.js';
import type { MigrationFile } from '../../migrations/migration-files.js';
import type { MigrationRunner } from '../../migrations/migration-runner.js';
import type { MigrationResult, MigrationStatus } from '../../migrations/migration-types.js';
import { MIGRATIONS_TABLE, readMigrationStatus } from '../../migrations/migration-history.js';
import { adaptPooledSchema } from '../../catalog/pooled-adaptation.js';
import { addKeyShims, dropKeyShims, referencedTables } from '../../catalog/pooled-shims.js';
import { tablesInInsertOrder } from '../../catalog/schema-tables.js';
import { qualifiedName, quoteIdentifier } from '../../shared/identifiers.js';
import type { TenantRegistry } from '../registry/tenant-registry.js';
import type { TenantRow } from '../registry/tenant-registry-store.js';
import { lockTenant } from '../tenant-locks.js';
import { migrationsDigest } from '../tenant-migrations-digest.js';
import { TenantAlreadyExistsError } from '../tenant.errors.js';
import type { ResolvedPooledTier } from '../tenant-tier.js';
import { PooledMigrationError, PooledRoleUnsafeError } from './pooled.errors.js';

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
    let result: MigrationResult;
    try {
      await this.#withSession((client) => ensurePooledRole(client, role));
      result = await this.runner.migrate(schema, files, {
        // A foreign key the file declares to an older table needs a key of its own columns.
        beforeFile: (client, file) =>
          addKeyShims(client, schema, referencedTables(file.sql), column),
        afterFile: async (client) => {
          await adaptPooledSchema(client, schema, { column, role });
          await dropKeyShims(client, schema);
        },
      });
    } catch (err) {
      // Recorded on every pooled tenant, so the fleet view shows why they are behind.
      const failure = new PooledMigrationError(schema, err);
      await this.#recordFailure(failure.message).catch(() => undefined);
      throw failure;
    }
    // Files deleted from the folder stay applied: the recorded version never goes down.
    await this.registry.store.recordPooledMigrated(
      files.length + result.missing.length,
      migrationsDigest(files, files.length),
    );
    // A create after this (start-up's migrateAll) need not migrate again.
    this.#ready = Promise.resolve(result);
    return result;
  }

  /** The pooled schema's migration history against the files (nothing applied when it is missing). */
  async status(): Promise<MigrationStatus> {
    const files = await this.files();
    return this.#withSession((client) => readMigrationStatus(client, this.options.schema, files));
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
   * Deletes every row of tenant `id` from the pooled tables (not the schema's migration
   * history), children first, in the open transaction on `client`, held to the tenant like its
   * own statements.
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

  /**
   * Records the pooled schema's failure on every pooled tenant's row. Each row written is a
   * registry notice, so a retry failing the same way writes none.
   */
  async #recordFailure(message: string): Promise<void> {
    await this.#withSession((client) =>
      client.query(
        `UPDATE ${this.registry.table} SET last_error = $1
          WHERE tier = 'pooled' AND status IN ('active', 'suspended')
            AND last_error IS DISTINCT FROM $1`,
        [message],
      ),
    );
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
async function ensurePooledRole(client: pg.ClientBase, role: string): Promise<void> {
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
