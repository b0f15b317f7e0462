import type pg from 'pg';
import { qualifiedName, quoteIdentifier } from '../../shared/identifiers.js';
import { RegistryMissingError } from './registry.errors.js';
import { readRows, readSnapshot, type ViewRow } from './registry-snapshot.js';
import type { SessionTracker } from '../../connection/sessions.js';
import { isDistributedSchema, keepRegistryLocal } from '../citus/citus.js';
import { ensureOnce } from '../tenant-locks.js';
import type { TenantStatus } from '../tenant-state.js';
import type { TenantTier } from '../tenant-tier.js';

/** A registry row as read from the table. */
export interface TenantRow extends ViewRow {
  migrations_digest: string | null;
}

// Bumped whenever the DDL below changes; an up-to-date registry is left alone (no lock, no DDL).
const REGISTRY_MARKER = 'nestjs-pg-tenancy registry v3';

/**
 * The registry table and everything PostgreSQL does for it: its DDL (created, or upgraded in place
 * from an older release, under an advisory lock), the version sequence, and the trigger that
 * announces every insert, update and delete — operators' plain SQL included — inside the changing
 * transaction, so no change can commit unannounced. It is the library's only writer of registry
 * rows: provisioning, copies and fleet migrations call its methods (inside their own transaction
 * when they pass a client) rather than writing SQL of their own.
 */
export class TenantRegistryStore {
  readonly #pool: pg.Pool;
  readonly #schema: string;

  constructor(pool: pg.Pool, registrySchema: string) {
    this.#pool = pool;
    this.#schema = registrySchema;
  }

  /** `"registrySchema"."tenants"`. */
  get table(): string {
    return qualifiedName(this.#schema, 'tenants');
  }

  /** The NOTIFY channel of registry changes. */
  get channel(): string {
    return `pg_tenancy_${this.#schema}`;
  }

  get #sequence(): string {
    return qualifiedName(this.#schema, 'tenants_version_seq');
  }

  /** Whether the table exists. Reads only. */
  async exists(): Promise<boolean> {
    const { rows } = await this.#pool.query<{ found: string | null }>(
      'SELECT to_regclass($1)::text AS found',
      [this.table],
    );
    return rows[0]?.found != null;
  }

  /** @throws RegistryMissingError when there is no registry table. Reads only. */
  async assertExists(): Promise<void> {
    if (!(await this.exists())) throw new RegistryMissingError(this.table);
  }

  /**
   * Creates the registry, or upgrades one made by an older release (adds `version`, the
   * `dropping` state and the trigger), under an advisory lock so instances starting together do
   * not collide. Costs one read when the registry is already current.
   */
  async ensure(connection: pg.ClientConfig, tracker?: SessionTracker): Promise<void> {
    await ensureOnce(
      this.#pool,
      { connection, tracker },
      `registry:${this.#schema}`,
      (db) => this.#isCurrent(db),
      async (client) => {
        await keepRegistryLocal(client, this.#schema);
        await client.query(this.#ddl());
      },
    );
  }

  async #isCurrent(db: pg.Pool | pg.ClientBase): Promise<boolean> {
    const { rows } = await db.query<{ marker: string | null; citus: boolean }>(
      `SELECT obj_description(to_regclass($1), 'pg_class') AS marker,
              to_regclass('pg_catalog.pg_dist_schema') IS NOT NULL AS citus`,
      [this.table],
    );
    if (rows[0]?.marker !== REGISTRY_MARKER) return false;
    // On Citus, a registry that a database-wide schema-based sharding made distributed is not
    // current: every read of it would hop to a worker.
    return !rows[0].citus || !(await isDistributedSchema(db, this.#schema));
  }

  #ddl(): string {
    const schema = quoteIdentifier(this.#schema);
    const table = this.table;
    const seq = this.#sequence;
    const fn = (name: string) => `${schema}.${quoteIdentifier(name)}`;
    // Identifiers are validated ([A-Za-z0-9_$]), so they are safe inside these literals.
    const channel = `'${this.channel}'`;
    const seqLiteral = `'${seq.replace(/'/g, "''")}'`;
    return `
      CREATE SCHEMA IF NOT EXISTS ${schema};
      CREATE TABLE IF NOT EXISTS ${table} (
        id text PRIMARY KEY,
        schema_name text NOT NULL UNIQUE,
        status text NOT NULL DEFAULT 'provisioning',
        metadata jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now(),
        migrated_version integer NOT NULL DEFAULT 0,
        migrations_digest text,
        last_migrated_at timestamptz,
        last_error text
      );
      CREATE SEQUENCE IF NOT EXISTS ${seq};
      ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT nextval(${seqLiteral});
      ALTER SEQUENCE ${seq} OWNED BY ${table}.version;
      ALTER TABLE ${table} ADD COLUMN IF NOT EXISTS tier text NOT NULL DEFAULT 'schema';
      ALTER TABLE ${table} DROP CONSTRAINT IF EXISTS tenants_tier_check;
      ALTER TABLE ${table} ADD CONSTRAINT tenants_tier_check CHECK (tier IN ('schema', 'pooled'));
      ALTER TABLE ${table} DROP CONSTRAINT IF EXISTS tenants_status_check;
      ALTER TABLE ${table} ADD CONSTRAINT tenants_status_check
        CHECK (status IN ('provisioning', 'active', 'suspended', 'dropping'));
      CREATE OR REPLACE FUNCTION ${fn('tenants_version')}() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        -- Every change gets a fresh version, whoever makes it. The row is locked by now, so a
        -- row's versions grow in commit order.
        NEW.version := nextval(${seqLiteral});
        RETURN NEW;
      END $fn$;
      CREATE OR REPLACE FUNCTION ${fn('tenants_announce')}() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        IF TG_OP = 'TRUNCATE' THEN
          PERFORM pg_notify(${channel}, json_build_object('op', 'truncate', 'id', '', 'version', nextval(${seqLiteral}))::text);
          RETURN NULL;
        ELSIF TG_OP = 'DELETE' THEN
          -- A deletion is a versioned tombstone: newer than anything the row ever carried.
          PERFORM pg_notify(${channel}, json_build_object('op', 'delete', 'id', OLD.id, 'version', nextval(${seqLiteral}))::text);
          RETURN OLD;
        END IF;
        PERFORM pg_notify(${channel}, json_build_object('op', lower(TG_OP), 'id', NEW.id, 'version', NEW.version, 'status', NEW.status)::text);
        RETURN NEW;
      END $fn$;
      DROP TRIGGER IF EXISTS tenants_version ON ${table};
      CREATE TRIGGER tenants_version BEFORE INSERT OR UPDATE ON ${table}
        FOR EACH ROW EXECUTE FUNCTION ${fn('tenants_version')}();
      DROP TRIGGER IF EXISTS tenants_announce ON ${table};
      CREATE TRIGGER tenants_announce AFTER INSERT OR UPDATE OR DELETE ON ${table}
        FOR EACH ROW EXECUTE FUNCTION ${fn('tenants_announce')}();
      DROP TRIGGER IF EXISTS tenants_announce_truncate ON ${table};
      CREATE TRIGGER tenants_announce_truncate AFTER TRUNCATE ON ${table}
        FOR EACH STATEMENT EXECUTE FUNCTION ${fn('tenants_announce')}();
      COMMENT ON TABLE ${table} IS '${REGISTRY_MARKER}';`;
  }

  /**
   * One tenant's row (an indexed lookup), or `undefined`. `forUpdate`: locked for the rest of the
   * open transaction on `db`.
   */
  async one(
    id: string,
    db: pg.Pool | pg.ClientBase = this.#pool,
    forUpdate = false,
  ): Promise<TenantRow | undefined> {
    const { rows } = await db.query<TenantRow>(
      `SELECT * FROM ${this.table} WHERE id = $1${forUpdate ? ' FOR UPDATE' : ''}`,
      [id],
    );
    return rows[0] && normaliseRow(rows[0]);
  }

  // Every write of a registry row is below: the table's states and transitions (tenant-state.ts)
  // are kept by these statements only.

  /**
   * Inserts tenant `id`'s row as `provisioning`, in the open transaction on `client`; `false`
   * when a row with that id exists already.
   */
  async insertProvisioning(
    client: pg.ClientBase,
    tenant: {
      readonly id: string;
      readonly schema: string;
      readonly metadata: Record<string, unknown>;
      readonly tier?: TenantTier;
    },
  ): Promise<boolean> {
    const inserted = await client.query(
      `INSERT INTO ${this.table} (id, schema_name, metadata, tier) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
      [tenant.id, tenant.schema, JSON.stringify(tenant.metadata), tenant.tier ?? 'schema'],
    );
    return inserted.rowCount !== 0;
  }

  /**
   * Records a tenant just created in the open transaction on `client`: its `status` (`active`,
   * or `provisioning` while files remain to apply) and the files applied. Returns the row written.
   */
  async recordCreated(
    client: pg.ClientBase,
    id: string,
    status: TenantStatus,
    migratedVersion: number,
    digest: string,
  ): Promise<TenantRow> {
    const written = await client.query<TenantRow>(
      `UPDATE ${this.table}
          SET status = $2, migrated_version = $3, migrations_digest = $4, last_migrated_at = now()
        WHERE id = $1
        RETURNING *`,
      [id, status, migratedVersion, digest],
    );
    return normaliseRow(written.rows[0]);
  }

  /**
   * Inserts a copy of `fromId`'s row under `toId` with schema `toSchema` (as `provisioning`, its
   * creation and migration columns kept), in the open transaction on `client`; `false` when a
   * row with id `toId` exists already.
   */
  async insertCopy(
    client: pg.ClientBase,
    fromId: string,
    toId: string,
    toSchema: string,
  ): Promise<boolean> {
    const inserted = await client.query(
      `INSERT INTO ${this.table} (id, schema_name, metadata, created_at, migrated_version,
                                 migrations_digest, last_migrated_at, last_error)
       SELECT $2, $3, metadata, created_at, migrated_version, migrations_digest,
              last_migrated_at, last_error
         FROM ${this.table} WHERE id = $1
       ON CONFLICT DO NOTHING`,
      [fromId, toId, toSchema],
    );
    return inserted.rowCount !== 0;
  }

  /** Marks `id` `dropping`, in the open transaction on `client` (its row locked by the caller). */
  async markDropping(client: pg.ClientBase, id: string): Promise<void> {
    await client.query(`UPDATE ${this.table} SET status = 'dropping' WHERE id = $1`, [id]);
  }

  /** Moves `id` to `to` if its status is one of `from`; whether it did. */
  async setStatus(
    id: string,
    to: TenantStatus,
    from: readonly TenantStatus[],
    db: pg.Pool | pg.ClientBase = this.#pool,
  ): Promise<boolean> {
    const updated = await db.query(
      `UPDATE ${this.table} SET status = $2 WHERE id = $1 AND status = ANY($3)`,
      [id, to, from],
    );
    return updated.rowCount === 1;
  }

  /**
   * Finishes a `provisioning` tenant: `active`, with the files applied. Returns the row written.
   * `from`: the states it may be finished from (a copy made in one transaction passes every
   * state leading to `active`).
   */
  async activate(
    id: string,
    migratedVersion: number,
    digest: string,
    db: pg.Pool | pg.ClientBase = this.#pool,
    from: readonly TenantStatus[] = ['provisioning'],
  ): Promise<TenantRow | undefined> {
    const { rows } = await db.query<TenantRow>(
      `UPDATE ${this.table}
          SET status = 'active', migrated_version = $2, migrations_digest = $3,
              last_migrated_at = now(), last_error = NULL
        WHERE id = $1 AND status = ANY($4)
        RETURNING *`,
      [id, migratedVersion, digest, from],
    );
    return rows[0] && normaliseRow(rows[0]);
  }

  /**
   * How many migration files every tenant has applied: the lowest `migrated_version` of tenants
   * that are not being dropped, or `Infinity` when there are none.
   */
  async appliedByAll(): Promise<number> {
    const { rows } = await this.#pool.query<{ v: number | null }>(
      `SELECT min(migrated_version) AS v FROM ${this.table} WHERE status <> 'dropping'`,
    );
    return rows[0].v ?? Infinity;
  }

  /** Records a migration run of a served tenant (no effect on one that is gone or dropping). */
  async recordMigrated(id: string, migratedVersion: number, digest: string): Promise<void> {
    await this.#pool.query(
      `UPDATE ${this.table}
          SET migrated_version = $2, migrations_digest = $3, last_migrated_at = now(), last_error = NULL
        WHERE id = $1 AND status IN ('active', 'suspended')`,
      [id, migratedVersion, digest],
    );
  }

  /** Records the files the pooled schema has applied on every pooled tenant's row. */
  async recordPooledMigrated(migratedVersion: number, digest: string): Promise<void> {
    await this.#pool.query(
      `UPDATE ${this.table} SET migrated_version = $1, migrations_digest = $2, last_migrated_at = now(),
              last_error = NULL
        WHERE tier = 'pooled' AND status IN ('active', 'suspended')
          AND (migrations_digest IS DISTINCT FROM $2 OR last_error IS NOT NULL)`,
      [migratedVersion, digest],
    );
  }

  /** Records why a tenant's migrations failed. */
  async recordFailure(id: string, message: string): Promise<void> {
    await this.#pool.query(`UPDATE ${this.table} SET last_error = $2 WHERE id = $1`, [id, message]);
  }

  /** Clears the recorded failure of tenants `ids`: up to date with the files after all. */
  async clearFailures(ids: readonly string[]): Promise<void> {
    await this.#pool.query(
      `UPDATE ${this.table} SET last_error = NULL WHERE id = ANY($1) AND last_error IS NOT NULL`,
      [ids],
    );
  }

  /** Deletes `id`'s row if it has `status` (any status when `null`); whether it did. */
  async deleteIf(
    id: string,
    status: TenantStatus | null,
    db: pg.Pool | pg.ClientBase = this.#pool,
  ): Promise<boolean> {
    const deleted =
      status === null
        ? await db.query(`DELETE FROM ${this.table} WHERE id = $1`, [id])
        : await db.query(`DELETE FROM ${this.table} WHERE id = $1 AND status = $2`, [id, status]);
    return deleted.rowCount === 1;
  }

  /** Whether `schema` exists. */
  async schemaExists(schema: string): Promise<boolean> {
    const found = await this.#pool.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
    return found.rowCount === 1;
  }

  /** Every row's id and version: what a reconciliation compares with the view. */
  async versions(): Promise<{ id: string; version: number }[]> {
    const { rows } = await this.#pool.query<TenantRow>(`SELECT id, version FROM ${this.table}`);
    return rows.map((r) => ({ id: r.id, version: Number(r.version) }));
  }

  /** The heartbeat: NOTIFY `$1` with `$2:count:sum` of the rows' versions (`TenantCache.digest`). */
  get heartbeatSql(): string {
    return `SELECT pg_notify($1, $2::text || ':' || count(*) || ':' || coalesce(sum(version), 0)) FROM ${this.table}`;
  }

  /** Every row, or only `ids`, ordered by id. */
  async all(ids?: readonly string[]): Promise<TenantRow[]> {
    const { rows } = await this.#pool.query<TenantRow>(
      `SELECT * FROM ${this.table} WHERE ($1::text[] IS NULL OR id = ANY($1)) ORDER BY id`,
      [ids ?? null],
    );
    return rows.map(normaliseRow);
  }

  /** Every row as the in-memory view keeps it, a page at a time, from one snapshot. */
  snapshot(onPage: (rows: ViewRow[]) => void): Promise<void> {
    return readSnapshot(this.#pool, this.table, onPage, () => this.all());
  }

  /** The rows of `ids` as the in-memory view keeps them (one query). */
  viewRows(ids: readonly string[]): Promise<ViewRow[]> {
    return readRows(this.#pool, this.table, ids, (some) => this.all(some));
  }
}

/** Fixes up a row as `pg` returns it (`version` is a bigint, hence a string). */
function normaliseRow(row: TenantRow): TenantRow {
  // bigint arrives as a string; versions stay far below 2^53.
  row.version = row.version === undefined || row.version === null ? 0 : Number(row.version);
  row.tier ??= 'schema';
  return row;
}
