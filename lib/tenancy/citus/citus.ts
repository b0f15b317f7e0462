import type pg from 'pg';
import type { MigrationFile } from '../../migrations/migration-files.js';
import { withoutTimeouts } from '../../connection/pool-options.js';
import { inTransaction, openSession, type SessionTracker } from '../../connection/sessions.js';
import { assertCitusCompatible, hasCitusConflicts } from './citus-migration-check.js';
import { CitusUnavailableError } from './citus.errors.js';
import { lockTenant } from '../tenant-locks.js';

/**
 * `tenancy.citus`: whether each new tenant schema is a Citus distributed schema (schema-based
 * sharding, Citus 12+), placed whole on one worker.
 *
 * - `'auto'`: yes when the database has the `citus` extension (12 or later) and the connection
 *   reaches a coordinator with workers registered; otherwise tenants are plain schemas.
 * - `true`: yes, and creating a tenant fails with `CitusUnavailableError` when it cannot be.
 * - `false`: never, even where the database turns `citus.enable_schema_based_sharding` on.
 */
export type CitusMode = 'auto' | boolean;

/** What the database says about Citus, read once per process. */
export interface CitusState {
  /** The `citus` extension's version in this database, or `null` when it is not installed. */
  readonly version: string | null;
  /** The connection reaches the coordinator of a cluster with at least one active node. */
  readonly coordinator: boolean;
  /** The connection reaches a worker (metadata group other than the coordinator's). */
  readonly worker: boolean;
  /** New tenant schemas are created distributed. */
  readonly distributeNewTenants: boolean;
}

/** Where a tenant's schema lives. */
export interface TenantPlacement {
  /** The tenant's id. */
  readonly tenantId: string;
  /** The tenant's schema. */
  readonly schema: string;
  /** The schema is a Citus distributed schema (otherwise it is local to the coordinator). */
  readonly distributed: boolean;
  /**
   * `host:port` of the node holding the schema's tables, or `null` when it is not distributed
   * or has no tables yet (Citus places a distributed schema when its first table is created).
   */
  readonly node: string | null;
  /** Shards of the schema (one per table). */
  readonly shards: number;
}

/** Progress of a move, polled from `get_rebalance_progress()` while it runs. */
export interface TenantMoveProgress {
  /** Bytes of the tenant's shards on the target so far. */
  readonly copiedBytes: number;
  /** Bytes of the tenant's shards on the source. */
  readonly totalBytes: number;
}

/** Options of `TenantService.move()`. */
export interface MoveTenantOptions {
  /**
   * Citus's `shard_transfer_mode`. `'force_logical'` copies the tables and then streams changes
   * by logical replication, so reads and writes continue during the move (writes wait only for
   * the final switch, typically well under a second); it needs `wal_level = logical` on the
   * nodes. `'block_writes'` blocks the tenant's writes while its tables are copied. `'auto'`
   * uses logical replication when every table has a primary key or replica identity.
   * Default: `'force_logical'`.
   */
  mode?: 'force_logical' | 'block_writes' | 'auto';
  /** Called about twice a second while data is copied. Default: none. */
  onProgress?: (progress: TenantMoveProgress) => void;
}

/** Options of `TenantService.move()` with defaults filled in. */
const MOVE_DEFAULTS = Object.freeze({ mode: 'force_logical' as const, progressIntervalMs: 500 });

const SCHEMA_BASED_SHARDING_SINCE = 12;

/** Whether `pg_dist_schema` (Citus 12+) says `schema` is distributed; `false` without Citus. */
export async function isDistributedSchema(
  db: pg.Pool | pg.ClientBase,
  schema: string,
): Promise<boolean> {
  const { rows } = await db.query<{ distributed: boolean | null }>(
    `SELECT CASE WHEN to_regclass('pg_catalog.pg_dist_schema') IS NULL THEN false END AS distributed`,
  );
  if (rows[0]?.distributed === false) return false;
  const found = await db.query(
    'SELECT 1 FROM pg_catalog.pg_dist_schema WHERE schemaid = to_regnamespace($1)',
    [schema],
  );
  return found.rowCount === 1;
}

/**
 * Runs in the registry's DDL transaction: the registry schema is created local to the coordinator
 * even where the database distributes new schemas by default, and one that an older release let
 * Citus distribute is brought back (`citus_schema_undistribute`). On plain PostgreSQL the setting
 * is an unused placeholder.
 */
export async function keepRegistryLocal(client: pg.ClientBase, schema: string): Promise<void> {
  await client.query('SET LOCAL citus.enable_schema_based_sharding TO off');
  if (await isDistributedSchema(client, schema)) {
    await client.query('SELECT citus_schema_undistribute($1::regnamespace)', [schema]);
  }
}

/**
 * Citus support of the tenancy: turns schema-based sharding on (or off) in the transaction that
 * creates a tenant's schema, converts existing tenants, and shows and moves placements. Every
 * statement goes to the connection the app was given, which must be the coordinator: that is
 * where Citus accepts DDL, so migrations and the registry (a local schema there) stay there too.
 */
export class CitusTenancy {
  readonly #pool: pg.Pool;
  readonly #connection: pg.ClientConfig;
  readonly #mode: CitusMode;
  readonly #tracker: SessionTracker | undefined;
  readonly #files: (() => Promise<readonly MigrationFile[]>) | undefined;
  #state: Promise<CitusState> | undefined;

  constructor(
    pool: pg.Pool,
    connection: pg.ClientConfig,
    mode: CitusMode,
    tracker?: SessionTracker,
    /** The tenant migration files, checked before a distributed tenant is created. */
    files?: () => Promise<readonly MigrationFile[]>,
  ) {
    this.#pool = pool;
    // A move or a conversion copies whole tenants: no statement timeout (as for migrations).
    this.#connection = withoutTimeouts(connection, { keepLockTimeout: true });
    this.#mode = mode;
    this.#tracker = tracker;
    this.#files = files;
  }

  /** What the database says about Citus; read once, on `db` (default: the pool). */
  state(db: pg.Pool | pg.ClientBase = this.#pool): Promise<CitusState> {
    this.#state ??= this.#detect(db).catch((err: unknown) => {
      this.#state = undefined;
      throw err;
    });
    return this.#state;
  }

  async #detect(db: pg.Pool | pg.ClientBase): Promise<CitusState> {
    const ext = await db.query<{ extversion: string }>(
      "SELECT extversion FROM pg_extension WHERE extname = 'citus'",
    );
    const version = ext.rows[0]?.extversion ?? null;
    let coordinator = false;
    let worker = false;
    if (version !== null) {
      const { rows } = await db.query<{ coordinator: boolean; group_id: number | null }>(
        `SELECT citus_is_coordinator() AS coordinator,
                (SELECT groupid FROM pg_catalog.pg_dist_local_group) AS group_id`,
      );
      coordinator = rows[0]?.coordinator === true;
      worker = (rows[0]?.group_id ?? 0) > 0;
    }
    const major = version === null ? 0 : Number.parseInt(version, 10);
    const capable = major >= SCHEMA_BASED_SHARDING_SINCE && coordinator;
    return Object.freeze({
      version,
      coordinator,
      worker,
      distributeNewTenants: this.#mode === true || (this.#mode === 'auto' && capable),
    });
  }

  /**
   * Runs inside the transaction that creates a tenant's schema, before `CREATE SCHEMA`: makes the
   * schema distributed (or, with `citus: false` on a database that shards schemas by default,
   * keeps it local). Costs nothing without Citus once the first tenant has been created.
   * Resolves `true` when the database has Citus (the tenant is then built by replaying its
   * migrations, never copied from the template schema: Citus refuses the copy's multi-statement
   * DDL on distributed schemas).
   *
   * @throws CitusUnavailableError with `citus: true` where Citus cannot shard, or on a worker.
   * @throws CitusMigrationError when a tenant migration file holds what Citus refuses on a
   *   distributed schema (see `assertCitusCompatible`), before anything is created.
   */
  async beforeCreateSchema(client: pg.ClientBase): Promise<boolean> {
    const state = await this.state(client);
    if (state.version === null && this.#mode !== true) return false;
    this.#assertCoordinator(state, 'create a tenant');
    if (this.#mode === true) this.#assertCapable(state);
    if (state.distributeNewTenants && this.#files) {
      await assertCitusCompatible(client, await this.#files());
    }
    await client.query(
      `SET LOCAL citus.enable_schema_based_sharding TO ${state.distributeNewTenants ? 'on' : 'off'}`,
    );
    return true;
  }

  /**
   * Before a fleet migration: where new tenants are distributed, the same check as before a
   * create, of the files some tenant has still to run (those after the first `appliedByAll`), so
   * that a file Citus would refuse part-way is refused before any tenant runs it. Files every
   * tenant already has are not judged again. Costs no query unless a file's text raises something.
   *
   * @throws CitusMigrationError naming the file (see `assertCitusCompatible`).
   */
  async beforeMigrateAll(appliedByAll: () => Promise<number>): Promise<void> {
    if (!this.#files || !(await this.state()).distributeNewTenants) return;
    const files = await this.#files();
    // Text only first: a fleet whose files raise nothing costs no query (a no-op run stays one).
    if (!files.some(hasCitusConflicts)) return;
    const pending = files.slice(await appliedByAll());
    if (pending.length > 0) await assertCitusCompatible(this.#pool, pending);
  }

  /**
   * Makes an existing tenant schema distributed (`citus_schema_distribute`), under the tenant's
   * lock. Returns `false` when it already was.
   * @throws CitusUnavailableError
   */
  async distribute(schema: string): Promise<boolean> {
    this.#assertCapable(await this.state());
    return this.#inSession('distribute', async (client) => {
      await lockTenant(client, schema);
      if (await isDistributedSchema(client, schema)) return false;
      await client.query('SELECT citus_schema_distribute($1::regnamespace)', [schema]);
      return true;
    });
  }

  /** Where each of `tenants` lives. One catalog query on the coordinator. */
  async placements(
    tenants: readonly { readonly id: string; readonly schema: string }[],
  ): Promise<TenantPlacement[]> {
    const state = await this.state();
    if (state.version === null) {
      return tenants.map((t) => ({
        tenantId: t.id,
        schema: t.schema,
        distributed: false,
        node: null,
        shards: 0,
      }));
    }
    this.#assertCoordinator(state, 'read placements');
    const { rows } = await this.#pool.query<{
      schema: string;
      distributed: boolean;
      nodes: string[] | null;
      shards: number;
    }>(
      `SELECT s.nspname AS schema,
              bool_or(ds.schemaid IS NOT NULL) AS distributed,
              array_agg(DISTINCT n.nodename || ':' || n.nodeport)
                FILTER (WHERE n.nodename IS NOT NULL) AS nodes,
              count(DISTINCT sh.shardid)::int AS shards
         FROM unnest($1::text[]) AS s(nspname)
         LEFT JOIN pg_namespace ns ON ns.nspname = s.nspname
         LEFT JOIN pg_catalog.pg_dist_schema ds ON ds.schemaid = ns.oid
         LEFT JOIN pg_catalog.pg_dist_partition p ON p.colocationid = ds.colocationid
         LEFT JOIN pg_catalog.pg_dist_shard sh ON sh.logicalrelid = p.logicalrelid
         LEFT JOIN pg_catalog.pg_dist_placement pl ON pl.shardid = sh.shardid
         LEFT JOIN pg_catalog.pg_dist_node n ON n.groupid = pl.groupid AND n.noderole = 'primary'
        GROUP BY s.nspname`,
      [tenants.map((t) => t.schema)],
    );
    const bySchema = new Map(rows.map((r) => [r.schema, r]));
    return tenants.map((t) => {
      const row = bySchema.get(t.schema);
      return {
        tenantId: t.id,
        schema: t.schema,
        distributed: row?.distributed ?? false,
        node: row?.nodes?.join(',') ?? null,
        shards: row?.shards ?? 0,
      };
    });
  }

  /** The active primary nodes that can hold shards, as `host:port`. */
  async nodes(): Promise<string[]> {
    const { rows } = await this.#pool.query<{ node: string }>(
      `SELECT nodename || ':' || nodeport AS node FROM pg_catalog.pg_dist_node
        WHERE isactive AND noderole = 'primary' AND shouldhaveshards ORDER BY nodeid`,
    );
    return rows.map((r) => r.node);
  }

  /**
   * Moves a distributed schema's shards to `host:port` with `citus_schema_move`, reporting the
   * bytes copied while it runs. Resolves when Citus has switched the tenant over.
   */
  async move(
    schema: string,
    host: string,
    port: number,
    options: MoveTenantOptions = {},
  ): Promise<void> {
    this.#assertCapable(await this.state());
    const mode = options.mode ?? MOVE_DEFAULTS.mode;
    const poll = options.onProgress ? this.#pollProgress(schema, options.onProgress) : undefined;
    try {
      const session = await openSession(this.#connection, {
        tracker: this.#tracker,
        applicationName: 'nestjs-pg-tenancy:move',
      });
      try {
        await session.client.query(
          'SELECT citus_schema_move($1::regnamespace, $2, $3, $4::citus.shard_transfer_mode)',
          [schema, host, port, mode],
        );
      } finally {
        await session.close();
      }
    } finally {
      poll?.stop();
    }
  }

  /** Reads `get_rebalance_progress()` for `schema`'s shards until stopped. */
  #pollProgress(schema: string, report: (progress: TenantMoveProgress) => void) {
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const tick = async () => {
      try {
        const { rows } = await this.#pool.query<{ total: string | null; copied: string | null }>(
          `SELECT sum(p.source_shard_size) AS total, sum(p.target_shard_size) AS copied
             FROM get_rebalance_progress() p
             JOIN pg_class c ON c.oid = p.table_name
             JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = $1`,
          [schema],
        );
        if (!stopped && rows[0]?.total != null) {
          report({ copiedBytes: Number(rows[0].copied ?? 0), totalBytes: Number(rows[0].total) });
        }
      } catch {
        // Progress is best effort: the move itself reports its own failure.
      }
      if (!stopped) timer = setTimeout(() => void tick(), MOVE_DEFAULTS.progressIntervalMs);
    };
    timer = setTimeout(() => void tick(), MOVE_DEFAULTS.progressIntervalMs);
    return {
      stop: () => {
        stopped = true;
        clearTimeout(timer);
      },
    };
  }

  async #inSession<T>(label: string, fn: (client: pg.ClientBase) => Promise<T>): Promise<T> {
    const session = await openSession(this.#connection, {
      tracker: this.#tracker,
      applicationName: `nestjs-pg-tenancy:${label}`,
    });
    try {
      return await inTransaction(session.client, () => fn(session.client));
    } finally {
      await session.close();
    }
  }

  #assertCoordinator(state: CitusState, what: string): void {
    if (state.worker) {
      throw new CitusUnavailableError(
        `Cannot ${what}: the connection reaches a Citus worker, where DDL is refused and a new schema would stay on that worker alone. Point the connection (DATABASE_URL) at the coordinator.`,
      );
    }
  }

  #assertCapable(state: CitusState): void {
    this.#assertCoordinator(state, 'use Citus schema-based sharding');
    if (state.version === null) {
      throw new CitusUnavailableError(
        'This database has no citus extension, so tenant schemas cannot be distributed. Run CREATE EXTENSION citus on every node (and register the workers with citus_add_node), or set tenancy.citus to false or "auto".',
      );
    }
    if (Number.parseInt(state.version, 10) < SCHEMA_BASED_SHARDING_SINCE) {
      throw new CitusUnavailableError(
        `Citus ${state.version} has no schema-based sharding (it arrived in 12.0). Upgrade the extension (ALTER EXTENSION citus UPDATE after installing 12 or later), or set tenancy.citus to false.`,
      );
    }
    if (!state.coordinator) {
      throw new CitusUnavailableError(
        'The citus extension is installed but this node has no worker registered, so a distributed schema has nowhere to go. Register the coordinator and the workers (citus_set_coordinator_host, citus_add_node), or set tenancy.citus to false or "auto".',
      );
    }
  }
}
