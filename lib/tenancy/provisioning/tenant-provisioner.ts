import { reserveTenant } from './reserve-tenant.js';
import type { PooledTier } from '../pooled/pooled-tier.js';
import { PooledTierDisabledError } from '../pooled/pooled.errors.js';
import type { TenantTier } from '../tenant-tier.js';
import type { LoggerService } from '@nestjs/common';
import type pg from 'pg';
import { quoteIdentifier } from '../../shared/identifiers.js';
import { withoutTimeouts } from '../../connection/pool-options.js';
import type { MigrationFile } from '../../migrations/migration-files.js';
import type { MigrationRunner } from '../../migrations/migration-runner.js';
import {
  inTransaction,
  openSession,
  SessionKeeper,
  type SessionTracker,
} from '../../connection/sessions.js';
import type { CitusTenancy } from '../citus/citus.js';
import { migrationsDigest } from '../tenant-migrations-digest.js';
import { lockTenant, tenantGuard } from '../tenant-locks.js';
import { toTenantInfo, type TenantInfo } from '../registry/tenant-info.js';
import type { TenantRegistry } from '../registry/tenant-registry.js';
import type { TenantRow } from '../registry/tenant-registry-store.js';
import type { TenantTemplate } from './tenant-template.js';
import { statesLeadingTo, type TenantStatus } from '../tenant-state.js';
import {
  TenantAlreadyExistsError,
  TenantCreationError,
  TenantNotFoundError,
} from '../tenant.errors.js';

/** What `TenantService.repair()` found and did. */
export interface TenantRepairResult {
  /** The tenant repaired. */
  readonly tenantId: string;
  /** The status found, or `null` when there was no row. */
  readonly before: TenantStatus | null;
  /** The status left, or `null` when the tenant is gone. */
  readonly after: TenantStatus | null;
  /**
   * `finished-create`: a `provisioning` tenant got its remaining migrations and is active;
   * `removed`: a `provisioning` row without a schema (left by an older release) was deleted;
   * `finished-drop`: a `dropping` tenant's schema and row were removed; `finished-move`: a move
   * between tiers that had flipped lost its old copy and change capture; `undid-move`: one that
   * had not flipped lost its new copy and change capture (the tenant stays in its old tier);
   * `none`: nothing to do.
   */
  readonly action:
    'finished-create' | 'removed' | 'finished-drop' | 'finished-move' | 'undid-move' | 'none';
}

/** Longest wait for one lock by a drop before it lets go and tries again. */
const DROP_LOCK_TIMEOUT_MS = 100;
/** Longest pause between two attempts of a drop. */
const DROP_MAX_PAUSE_MS = 1_000;
/** How long a drop lets the tenant's in-flight work finish before cancelling it. */
const DROP_GRACE_MS = 5_000;
/** A drop still blocked after this fails (the tenant stays `dropping`; drop or repair again). */
const DROP_GIVE_UP_MS = 30_000;
/** Idle sessions kept for the next create (per instance). */
const CREATE_SESSIONS_KEPT = 4;
/** An idle create session is closed after this long unused. */
const CREATE_SESSION_IDLE_MS = 10_000;
/** A kept session that does not answer within this (dropped by the network) is replaced. */
const CREATE_SESSION_PING_TIMEOUT_MS = 1_000;
/** Tables dropped per transaction in a large schema. */
const DROP_BATCH = 200;

/**
 * Creating, dropping, suspending, resuming and repairing tenants: every transition of the
 * lifecycle in `tenant-state.ts`, each made under the tenant's lock on a connection of its own.
 */
export class TenantProvisioner {
  readonly #connection: pg.ClientConfig;
  /** Sessions kept warm between creates: a new connection costs more than a whole clone. */
  readonly #sessions: SessionKeeper;

  constructor(
    private readonly registry: TenantRegistry,
    private readonly runner: MigrationRunner,
    connection: pg.ClientConfig,
    private readonly files: () => Promise<readonly MigrationFile[]>,
    private readonly logger: LoggerService,
    private readonly tracker?: SessionTracker,
    private readonly template?: TenantTemplate,
    private readonly citus?: CitusTenancy,
    private readonly pooled?: PooledTier,
  ) {
    // Tenant migrations run in these sessions: like the migration runner's, they have no
    // statement timeout (index builds and backfills legitimately run long).
    this.#connection = withoutTimeouts(connection);
    this.#sessions = new SessionKeeper(this.#connection, {
      tracker,
      applicationName: 'nestjs-pg-tenancy:provisioning',
      max: CREATE_SESSIONS_KEPT,
      idleMs: CREATE_SESSION_IDLE_MS,
      pingTimeoutMs: CREATE_SESSION_PING_TIMEOUT_MS,
    });
  }

  /**
   * One transaction: the row (`provisioning`), the schema, every transactional migration file
   * with its history (copied from the template schema when it holds them, see
   * `TenantTemplate`), then `active`. Files marked no-transaction (and any after them) run after
   * the commit while the row stays `provisioning`.
   */
  async create(
    id: string,
    metadata: Record<string, unknown>,
    tier: TenantTier = 'schema',
  ): Promise<TenantInfo> {
    const schema = this.registry.schemaFor(id);
    if (tier === 'pooled') return this.#createPooled(id, metadata);
    const files = await this.files();
    const split = files.findIndex((f) => !f.transactional);
    const inTx = split < 0 ? files : files.slice(0, split);
    const session = await this.#sessions.acquire();
    // Whether migration files ran on the session (they may have changed its settings).
    let replayed = true;
    let created: TenantRow | undefined;
    try {
      try {
        await inTransaction(session.client, async () => {
          const { client } = session;
          // Citus: the schema (and every table its migrations create) is distributed, or not.
          const citus = this.citus;
          const onCitus =
            (await reserveTenant(
              client,
              this.registry,
              { id, schema, metadata },
              citus && ((c) => citus.beforeCreateSchema(c)),
            )) ?? false;
          const cloned = onCitus
            ? 0
            : ((await this.template?.cloneInto(client, schema, inTx)) ?? 0);
          // The history table comes with a clone; a replay (or no files) makes it.
          if (cloned === 0 || cloned < inTx.length) {
            await this.runner.applyInTransaction(client, schema, inTx.slice(cloned));
          }
          replayed = cloned < inTx.length;
          created = await this.registry.store.recordCreated(
            client,
            id,
            split < 0 ? 'active' : 'provisioning',
            inTx.length,
            migrationsDigest(inTx, inTx.length),
          );
        });
      } catch (err) {
        if (err instanceof TenantAlreadyExistsError) throw err;
        // A connection lost around COMMIT leaves it unknown whether it committed: look.
        const row = await this.registry.store.one(id).catch(() => undefined);
        if (row?.schema_name === schema && row.status === 'active') return this.#info(id);
        throw new TenantCreationError(id, err, row ? 'provisioning' : 'nothing');
      }
    } finally {
      await this.#sessions.release(session, replayed);
      this.template?.replenish();
    }
    if (split >= 0) {
      try {
        created = await this.#finishCreate(id, schema, files);
      } catch (err) {
        throw new TenantCreationError(id, err, 'provisioning');
      }
    }
    return this.#info(id, created);
  }

  /** A pooled tenant: its row, in one transaction (see `PooledTier.create`). */
  async #createPooled(id: string, metadata: Record<string, unknown>): Promise<TenantInfo> {
    if (!this.pooled) throw new PooledTierDisabledError();
    try {
      return this.#info(id, await this.pooled.create(id, metadata));
    } catch (err) {
      if (err instanceof TenantAlreadyExistsError) throw err;
      throw new TenantCreationError(id, err, 'nothing');
    }
  }

  /**
   * Marks the tenant `dropping` (refused everywhere from then on, within the staleness bound),
   * waits for its in-flight work (cancelling what outlives the wait), then drops its schema and
   * deletes its row in one transaction. A crash midway leaves a `dropping` row that `drop` or
   * `repair` finishes.
   */
  async drop(id: string): Promise<void> {
    const schema = this.registry.schemaFor(id);
    const { store } = this.registry;
    const session = await openSession(this.#connection, {
      tracker: this.tracker,
      applicationName: 'nestjs-pg-tenancy:drop',
    });
    try {
      const tier = await inTransaction(session.client, async () => {
        await lockTenant(session.client, schema);
        const row = await store.one(id, session.client, true);
        if (!row) throw new TenantNotFoundError(id);
        if (row.status !== 'dropping') await store.markDropping(session.client, id);
        return row.tier;
      });
      await this.registry.refresh(id).catch(() => undefined);
      if (tier === 'pooled') await this.#dropPooled(session.client, id, schema);
      else await this.#dropSchema(session.client, id, schema);
    } catch (err) {
      // A connection broken while idle (terminated between two attempts) fails the next query
      // with pg's "not queryable", which says nothing: report what broke it, as a query in
      // flight would have.
      throw session.brokenBy && (err as { code?: unknown }).code === undefined
        ? session.brokenBy
        : err;
    } finally {
      await session.close();
    }
    await this.registry.refresh(id).catch(() => undefined);
  }

  /** Moves an existing tenant to `to` (`active` or `suspended`). @throws TenantNotFoundError */
  async setStatus(id: string, to: 'active' | 'suspended'): Promise<TenantInfo> {
    this.registry.validate(id);
    const from = [to, ...statesLeadingTo(to)];
    const updated = await this.registry.store.setStatus(id, to, from);
    if (!updated) throw new TenantNotFoundError(id);
    return this.#info(id);
  }

  /** Finishes or removes a tenant a crash left `provisioning` or `dropping`. */
  async repair(id: string): Promise<TenantRepairResult> {
    const schema = this.registry.schemaFor(id);
    const row = await this.registry.store.one(id);
    if (!row) throw new TenantNotFoundError(id);
    const result = (action: TenantRepairResult['action'], after: TenantStatus | null) => ({
      tenantId: id,
      before: row.status,
      after,
      action,
    });
    if (row.status === 'dropping') {
      await this.drop(id);
      return result('finished-drop', null);
    }
    if (row.status !== 'provisioning') return result('none', row.status);
    if (!(await this.registry.store.schemaExists(schema))) {
      const removed = await this.registry.store.deleteIf(id, 'provisioning');
      await this.registry.refresh(id).catch(() => undefined);
      return result(removed ? 'removed' : 'none', removed ? null : row.status);
    }
    await this.#finishCreate(id, schema, await this.files());
    // This instance serves it at once; others follow the trigger's notice.
    await this.registry.refresh(id);
    return result('finished-create', 'active');
  }

  /** Applies the remaining files to a `provisioning` tenant, then makes it `active`. */
  async #finishCreate(
    id: string,
    schema: string,
    files: readonly MigrationFile[],
  ): Promise<TenantRow | undefined> {
    await this.runner.migrate(schema, files, {
      createSchema: false,
      guard: tenantGuard(this.registry.table, id, ['provisioning']),
    });
    return this.registry.store.activate(id, files.length, migrationsDigest(files, files.length));
  }

  /**
   * Drops the schema and deletes the row. Every attempt waits at most `DROP_LOCK_TIMEOUT_MS` for
   * a lock, then gives up and tries again after a growing pause: a drop never sits in a lock
   * queue, so nobody queues behind it (PostgreSQL queues a lock request behind a waiting
   * `ACCESS EXCLUSIVE` one). A large schema is dropped a batch of tables per transaction, so a
   * drop never holds thousands of locks (the lock table is shared by every tenant). Work on the
   * tenant that still holds its tables after `DROP_GRACE_MS` is cancelled.
   */
  async #dropSchema(client: pg.ClientBase, id: string, schema: string): Promise<void> {
    const started = performance.now();
    let cancelled = false;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#dropBatches(client, schema);
        await inTransaction(client, async () => {
          await client.query(`SET LOCAL lock_timeout = ${DROP_LOCK_TIMEOUT_MS}`);
          await lockTenant(client, schema);
          await client.query(`DROP SCHEMA IF EXISTS ${quoteIdentifier(schema)} CASCADE`);
          await this.registry.store.deleteIf(id, 'dropping', client);
        });
        return;
      } catch (err) {
        const waited = performance.now() - started;
        if ((err as { code?: string }).code !== '55P03' || waited >= DROP_GIVE_UP_MS) throw err;
        if (waited >= DROP_GRACE_MS && !cancelled) {
          cancelled = true;
          await this.#cancelWorkOn(client, id, schema);
        }
        const pause = Math.min(DROP_MAX_PAUSE_MS, 25 * 2 ** attempt);
        await new Promise((resolve) =>
          setTimeout(resolve, pause / 2 + Math.random() * (pause / 2)),
        );
      }
    }
  }

  /**
   * A pooled tenant's rows and row, once no instance can still be serving it: after the
   * registry's staleness bound, so no statement of the tenant's starts after its rows are gone.
   */
  async #dropPooled(client: pg.ClientBase, id: string, schema: string): Promise<void> {
    const pooled = this.pooled ?? throwPooledOff();
    await pooled.settle();
    await inTransaction(client, async () => {
      await lockTenant(client, schema);
      await pooled.removeRows(client, id);
      await this.registry.store.deleteIf(id, 'dropping', client);
    });
  }

  /** Drops the schema's tables `DROP_BATCH` at a time until few enough are left for one go. */
  async #dropBatches(client: pg.ClientBase, schema: string): Promise<void> {
    for (;;) {
      const { rows } = await client.query<{ name: string }>(
        `SELECT format('%I.%I', n.nspname, c.relname) AS name
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'm', 'f') AND NOT c.relispartition
          ORDER BY c.oid LIMIT $2`,
        [schema, DROP_BATCH + 1],
      );
      if (rows.length <= DROP_BATCH) return;
      await inTransaction(client, async () => {
        await client.query(`SET LOCAL lock_timeout = ${DROP_LOCK_TIMEOUT_MS}`);
        await lockTenant(client, schema);
        const batch = rows.slice(0, DROP_BATCH).map((r) => r.name);
        await client.query(`DROP TABLE IF EXISTS ${batch.join(', ')} CASCADE`);
      });
    }
  }

  /**
   * Running queries on the schema's tables are cancelled; a transaction left idle while
   * holding them would never end on its own, so its backend is terminated. Only locks in this
   * database count: relation oids repeat across the server's databases.
   */
  async #cancelWorkOn(client: pg.ClientBase, id: string, schema: string): Promise<void> {
    const { rows } = await client.query<{ pid: number }>(
      `SELECT a.pid,
              CASE WHEN a.state LIKE 'idle in transaction%'
                   THEN pg_terminate_backend(a.pid) ELSE pg_cancel_backend(a.pid) END AS signalled
         FROM pg_stat_activity a
        WHERE a.pid <> pg_backend_pid()
          AND a.pid IN (SELECT l.pid FROM pg_locks l
                          JOIN pg_class c ON c.oid = l.relation
                          JOIN pg_namespace n ON n.oid = c.relnamespace
                         WHERE n.nspname = $1 AND l.granted
                           AND l.database = (SELECT oid FROM pg_database
                                              WHERE datname = current_database()))`,
      [schema],
    );
    this.logger.warn(
      `Dropping tenant ${id}: work on its schema outlived ${DROP_GRACE_MS} ms; cancelled the work of ${rows.length} connection(s).`,
    );
  }

  /**
   * The tenant as read back now. `created`: the row this call just committed, reported when a
   * drop elsewhere (waiting for the tenant's lock) removed it before the read: the creation
   * succeeded all the same.
   */
  async #info(id: string, created?: TenantRow): Promise<TenantInfo> {
    const entry = await this.registry.refresh(id);
    if (entry) return entry.info;
    if (created) return toTenantInfo(created);
    throw new TenantNotFoundError(id);
  }
}

function throwPooledOff(): never {
  throw new PooledTierDisabledError();
}
