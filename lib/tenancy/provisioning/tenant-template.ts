import type { LoggerService } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { DatabaseShuttingDownError } from '../../shared/errors.js';
import { quoteIdentifier } from '../../shared/identifiers.js';
import type { MigrationFile } from '../../migrations/migration-files.js';
import { MIGRATIONS_TABLE } from '../../migrations/migration-history.js';
import type { MigrationRunner } from '../../migrations/migration-runner.js';
import { inTransaction, openSession, type SessionTracker } from '../../connection/sessions.js';
import {
  cloneScript,
  renameScript,
  schemaFingerprint,
  scriptFor,
  UncloneableSchemaError,
} from '../../catalog/tenant-catalog.js';
import { lockTenant, tryLockTenantShared } from '../tenant-locks.js';
import { migrationsDigest } from '../tenant-migrations-digest.js';

/**
 * Name of the template schema of a registry: `<registrySchema>$template`. The `$` keeps it out
 * of every tenant's name under the default id pattern, and makes PostgreSQL always print it
 * quoted, which is what lets a clone re-point it reliably.
 */
export function templateSchemaFor(registrySchema: string): string {
  return `${registrySchema}$template`;
}

/**
 * The files a template holds: the leading transactional files before the first one marked
 * `-- pg-tenancy: no-template`. A tenant is cloned from these and replays the rest.
 */
function cloneableFiles(files: readonly MigrationFile[]): readonly MigrationFile[] {
  const stop = files.findIndex((f) => !f.transactional || f.cloneable === false);
  return stop < 0 ? files : files.slice(0, stop);
}

/** The clone script for one version of the template, or why it cannot be cloned. */
interface Snapshot {
  /** Digest of the template's files. */
  readonly key: string;
  readonly script?: string;
  /**
   * What a copy renamed to a tenant's name still needs (see `renameScript`); `undefined` when a
   * renamed copy is not exact, so spares are not used for this version.
   */
  readonly rename?: string;
  readonly uncloneable?: string;
}

/** Spare schemas: copies of the template made ahead of time, renamed to a tenant's on create. */
export interface TemplateSpares {
  /** The registry schema: spares are listed in a table there and named after it. */
  readonly registrySchema: string;
  /** How many to keep ready; `0` keeps none (and drops those left). */
  readonly count: number;
}

/** Name of the table listing a registry's spare schemas. */
const SPARES_TABLE = 'tenant_template_spares';

interface HistoryRow {
  version: number;
  checksum: string;
}

/**
 * The template schema: a schema kept at the tenant migrations (by `migrateAll()` and at
 * start-up, under the template's advisory lock, so concurrent instances agree), which `create()`
 * copies into a new tenant's schema inside the creating transaction instead of replaying every
 * file. The copy is a script generated from the template's catalog once per version and checked
 * once per instance: it is run into a scratch schema (rolled back) whose fingerprint must equal
 * the template's. Whatever cannot be cloned exactly (an object kind the script does not cover,
 * a file marked `no-template`, a template at other files than this instance's) falls back to
 * replay, so cloning is only ever a faster way to the same result.
 *
 * Faster still, spares: copies made ahead of time (`<registrySchema>$spare_<hex>`, listed with
 * the digest of their files in `<registrySchema>.tenant_template_spares`), one of which `create()`
 * renames to the tenant's schema. That path is checked the same way (a copy renamed in the
 * scratch transaction must have the template's fingerprint). Spares of other files are dropped
 * by `update()`; new ones are made there and, in the background, after a create took one.
 */
export class TenantTemplate {
  #snapshot: Snapshot | undefined;
  /** The spares table is known to exist (this instance made sure of it). */
  #sparesReady = false;
  /** A create took a spare, or found none: make more after it commits. */
  #sparesWanted = false;
  #refilling: Promise<void> | undefined;
  #refillAgain = false;
  #stopped = false;

  constructor(
    /** The template schema's name. */
    readonly schema: string,
    private readonly runner: MigrationRunner,
    private readonly connection: pg.ClientConfig,
    private readonly files: () => Promise<readonly MigrationFile[]>,
    private readonly logger: LoggerService,
    private readonly tracker?: SessionTracker,
    private readonly spares: TemplateSpares = { registrySchema: '', count: 0 },
  ) {
    tracker?.onDrain?.(() => {
      this.#stopped = true;
    });
  }

  /** `"registry"."tenant_template_spares"`. */
  get #sparesTable(): string {
    return `${quoteIdentifier(this.spares.registrySchema)}.${quoteIdentifier(SPARES_TABLE)}`;
  }

  /** Key of the advisory lock under which spares are made and dropped (one refill at a time). */
  get #sparesLock(): string {
    return `${this.spares.registrySchema}$spares`;
  }

  /**
   * Brings the template to the current files and prepares its clone script. Never throws: a
   * failure is logged, and tenants are created by replay until a later update succeeds.
   */
  async update(): Promise<void> {
    try {
      await this.#update();
    } catch (err) {
      this.logger.warn(
        `The tenant template schema "${this.schema}" could not be brought up to date: ${(err as Error).message}. Tenants are created by replaying their migrations until it is.`,
      );
    }
  }

  /**
   * Gives `target` (an empty schema created in the caller's open transaction on `client`) the
   * template's objects, rows and history: by renaming a spare to it when one of this version is
   * ready, else by copying the template. Returns how many leading `files` it covered: `0` when
   * it did nothing (the template is missing, busy being migrated, at other files, or not
   * cloneable), so the caller replays.
   */
  async cloneInto(
    client: pg.ClientBase,
    target: string,
    files: readonly MigrationFile[],
  ): Promise<number> {
    const cloneable = cloneableFiles(files);
    if (cloneable.length === 0) return 0;
    // A spare is of exactly these files (its digest says so), whatever the template holds now:
    // taking one needs neither the template's lock nor a look at its history.
    const known = this.#snapshot;
    if (
      known?.key === migrationsDigest(cloneable, cloneable.length) &&
      (await this.#adoptSpare(client, target, known))
    ) {
      return cloneable.length;
    }
    // Shared: any number of creates clone at once; a migration of the template waits for them,
    // and a create never waits for a migration of the template (it replays instead).
    if (!(await tryLockTenantShared(client, this.schema))) return 0;
    const snapshot = await this.#snapshotFor(client, cloneable);
    if (snapshot?.script === undefined) return 0;
    if (snapshot === known || !(await this.#adoptSpare(client, target, snapshot))) {
      await this.runner.applyInTransaction(client, target, []);
      await this.#copy(client, snapshot.script, target);
    }
    return cloneable.length;
  }

  /**
   * Starts making spares in the background when a create took one (or found none), once its
   * transaction has ended. Never throws; a failure is logged.
   */
  replenish(): void {
    if (!this.#sparesWanted || this.#stopped) return;
    this.#sparesWanted = false;
    this.#refillSoon();
  }

  /** Runs the copy script into `target` and copies the template's history rows. */
  async #copy(client: pg.ClientBase, script: string, target: string): Promise<void> {
    const history = quoteIdentifier(MIGRATIONS_TABLE);
    await client.query(
      scriptFor(script, target) +
        `INSERT INTO ${quoteIdentifier(target)}.${history} (version, name, checksum, duration_ms)
         SELECT version, name, checksum, duration_ms FROM ${quoteIdentifier(this.schema)}.${history}
          ORDER BY version`,
    );
  }

  /**
   * Takes a spare made from this version of the template (`FOR UPDATE SKIP LOCKED`: concurrent
   * creates never take the same one, and a create that rolls back puts it back), drops the
   * empty `target` made by the caller and renames the spare to it. `false` when there is none
   * (or it could not be used): the caller copies the template instead.
   */
  async #adoptSpare(client: pg.ClientBase, target: string, snapshot: Snapshot): Promise<boolean> {
    if (this.spares.count === 0 || !this.#sparesReady || snapshot.rename === undefined) {
      return false;
    }
    this.#sparesWanted = true;
    const { rows } = await client.query<{ schema_name: string }>(
      `DELETE FROM ${this.#sparesTable} WHERE schema_name =
         (SELECT schema_name FROM ${this.#sparesTable} WHERE digest = $1
           ORDER BY made_at LIMIT 1 FOR UPDATE SKIP LOCKED)
       RETURNING schema_name`,
      [snapshot.key],
    );
    if (!rows[0]) return false;
    const spare = quoteIdentifier(rows[0].schema_name);
    const to = quoteIdentifier(target);
    try {
      await client.query(
        `SAVEPOINT pg_tenancy_spare;
         DROP SCHEMA ${to} CASCADE;
         ALTER SCHEMA ${spare} RENAME TO ${to};
         ${scriptFor(snapshot.rename, target)}
         UPDATE ${to}.${quoteIdentifier(MIGRATIONS_TABLE)} SET applied_at = now();
         RELEASE SAVEPOINT pg_tenancy_spare`,
      );
      return true;
    } catch (err) {
      // The spare's row is gone with this transaction either way (its schema was dropped by
      // hand, say); the tenant is copied from the template instead.
      await client.query(
        'ROLLBACK TO SAVEPOINT pg_tenancy_spare; RELEASE SAVEPOINT pg_tenancy_spare',
      );
      this.logger.warn(
        `The spare schema ${spare} could not be used (${(err as Error).message}); the tenant was copied from the template instead.`,
      );
      return false;
    }
  }

  #refillSoon(): void {
    if (this.#refilling) {
      this.#refillAgain = true;
      return;
    }
    this.#refilling = (async () => {
      do {
        this.#refillAgain = false;
        await this.#refill();
      } while (this.#refillAgain && !this.#stopped);
    })()
      .catch((err: unknown) => {
        if (err instanceof DatabaseShuttingDownError || this.#stopped) return;
        this.logger.warn(
          `Spare schemas for new tenants could not be made: ${(err as Error).message}. Tenants are copied from the template schema "${this.schema}" meanwhile.`,
        );
      })
      .finally(() => {
        this.#refilling = undefined;
      });
  }

  /** Makes spares, one transaction each, until there are `count` of the current version. */
  async #refill(): Promise<void> {
    if (this.spares.count === 0 || !this.#sparesReady || this.#stopped) return;
    await this.#withSession(async (client, files) => {
      while (!this.#stopped) {
        const made = await inTransaction(client, async () => {
          if (!(await tryLockTenantShared(client, this.schema))) return false;
          await lockTenant(client, this.#sparesLock);
          const snapshot = await this.#snapshotFor(client, files);
          if (snapshot?.script === undefined || snapshot.rename === undefined) return false;
          const { rows } = await client.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM ${this.#sparesTable} WHERE digest = $1`,
            [snapshot.key],
          );
          if (rows[0].n >= this.spares.count) return false;
          const spare = `${this.spares.registrySchema}$spare_${randomBytes(6).toString('hex')}`;
          await client.query(`CREATE SCHEMA ${quoteIdentifier(spare)}`);
          await this.runner.applyInTransaction(client, spare, []);
          await this.#copy(client, snapshot.script, spare);
          await client.query(
            `INSERT INTO ${this.#sparesTable} (schema_name, digest) VALUES ($1, $2)`,
            [spare, snapshot.key],
          );
          return true;
        });
        if (!made) return;
      }
    });
  }

  /** Runs `fn` on a session of its own with the template's files, unless there are none. */
  async #withSession(
    fn: (client: pg.Client, files: readonly MigrationFile[]) => Promise<void>,
  ): Promise<void> {
    const files = cloneableFiles(await this.files());
    if (files.length === 0) return;
    // Its work is the library's own and short: bounded, so that a connection the network
    // dropped never leaves a transaction holding the template's lock, nor this call hanging.
    const session = await openSession(
      { ...this.connection, idle_in_transaction_session_timeout: 10_000, query_timeout: 120_000 },
      { tracker: this.tracker, applicationName: 'nestjs-pg-tenancy:template' },
    );
    try {
      await fn(session.client, files);
    } finally {
      await session.close();
    }
  }

  /**
   * Makes sure the spares table exists, and drops the spares that are not of `key` (made from
   * other files), or all of them when `count` is `0`.
   */
  async #pruneSpares(client: pg.ClientBase, key: string | undefined): Promise<void> {
    if (!this.spares.registrySchema) return;
    await inTransaction(client, async () => {
      await lockTenant(client, this.#sparesLock);
      if (this.spares.count > 0) {
        await client.query(
          `CREATE TABLE IF NOT EXISTS ${this.#sparesTable} (
             schema_name text PRIMARY KEY,
             digest text NOT NULL,
             made_at timestamptz NOT NULL DEFAULT now())`,
        );
      } else {
        const found = await client.query<{ present: boolean }>(
          'SELECT to_regclass($1) IS NOT NULL AS present',
          [this.#sparesTable],
        );
        if (!found.rows[0].present) return;
      }
      // Without a key (the template was busy) nothing is known to be stale: keep them all.
      if (this.spares.count > 0 && key === undefined) return;
      const { rows } = await client.query<{ schema_name: string }>(
        `DELETE FROM ${this.#sparesTable} WHERE digest IS DISTINCT FROM $1 RETURNING schema_name`,
        [this.spares.count > 0 ? key : null],
      );
      for (const { schema_name: spare } of rows) {
        await client.query(`DROP SCHEMA IF EXISTS ${quoteIdentifier(spare)} CASCADE`);
      }
    });
    this.#sparesReady = this.spares.count > 0;
  }

  async #update(): Promise<void> {
    let current = false;
    await this.#withSession(async (client, files) => {
      const history = await inTransaction(client, () => this.#history(client));
      if (history && this.#stale(history, files)) {
        // Built from files that changed (or that are now marked no-template): start again.
        await inTransaction(client, async () => {
          await lockTenant(client, this.schema);
          await client.query(`DROP SCHEMA IF EXISTS ${quoteIdentifier(this.schema)} CASCADE`);
        });
        this.logger.log(`Rebuilding the tenant template schema "${this.schema}".`);
      } else if (history && history.length > files.length) {
        // Ahead of these files: an instance with newer migrations keeps it; leave it to that one.
        return;
      }
      await this.runner.migrate(this.schema, files);
      const snapshot = await inTransaction(client, async () =>
        (await tryLockTenantShared(client, this.schema))
          ? this.#snapshotFor(client, files)
          : undefined,
      );
      await this.#pruneSpares(client, snapshot?.key);
      current = true;
    });
    if (current) await this.#refill();
  }

  /** The template's history, or `undefined` when it has none. */
  async #history(client: pg.ClientBase): Promise<HistoryRow[] | undefined> {
    const table = `${quoteIdentifier(this.schema)}.${quoteIdentifier(MIGRATIONS_TABLE)}`;
    const found = await client.query<{ present: boolean }>(
      'SELECT to_regclass($1) IS NOT NULL AS present',
      [table],
    );
    if (!found.rows[0].present) return undefined;
    const { rows } = await client.query<HistoryRow>(
      `SELECT version, checksum FROM ${table} ORDER BY version`,
    );
    return rows;
  }

  /**
   * A file the template applied differs from this instance's file of that number, although the
   * template is not simply ahead with files this instance does not have.
   */
  #stale(history: readonly HistoryRow[], files: readonly MigrationFile[]): boolean {
    return history.some((row) => {
      const file = files[row.version - 1];
      return file !== undefined && file.checksum !== row.checksum;
    });
  }

  /**
   * The clone script when the template holds exactly `files`; built and checked on first use
   * for each version of the files, inside a savepoint so that the caller's transaction goes on
   * whatever happens.
   */
  async #snapshotFor(
    client: pg.ClientBase,
    files: readonly MigrationFile[],
  ): Promise<Snapshot | undefined> {
    const history = await this.#history(client);
    if (
      history?.length !== files.length ||
      history.some((row, i) => row.version !== i + 1 || row.checksum !== files[i].checksum)
    ) {
      return undefined;
    }
    const key = migrationsDigest(files, files.length);
    if (this.#snapshot?.key === key) return this.#snapshot;
    await client.query('SAVEPOINT pg_tenancy_template');
    let snapshot: Snapshot;
    let transient = false;
    try {
      const script = await cloneScript(client, this.schema);
      const mismatch = await this.#check(client, script);
      if (mismatch === undefined) {
        const rename = await renameScript(client, this.schema);
        const renamed = await this.#check(client, script, rename);
        snapshot = { key, script, rename: renamed === undefined ? rename : undefined };
      } else {
        snapshot = { key, uncloneable: mismatch };
      }
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (!(err instanceof UncloneableSchemaError) && code === undefined) throw err;
      // A cancelled statement, a lock or serialization failure says nothing about the template:
      // replay this time, and check again next time.
      transient = code !== undefined && /^(57014|55P03|40001|40P01)$/.test(code);
      snapshot = { key, uncloneable: (err as Error).message };
    } finally {
      await client.query('ROLLBACK TO SAVEPOINT pg_tenancy_template');
      await client.query('RELEASE SAVEPOINT pg_tenancy_template');
    }
    if (transient) return undefined;
    if (snapshot.uncloneable !== undefined) {
      this.logger.warn(
        `Tenants are created by replaying their migrations, not from the template schema "${this.schema}": it cannot be cloned exactly (${snapshot.uncloneable}). Mark the migration responsible with "-- pg-tenancy: no-template" to clone the files before it.`,
      );
    }
    this.#snapshot = snapshot;
    return snapshot;
  }

  /**
   * Runs the script into a scratch schema (with `rename`: then renames it and runs that, as a
   * spare is used); the first difference from the template, if any.
   */
  async #check(
    client: pg.ClientBase,
    script: string,
    rename?: string,
  ): Promise<string | undefined> {
    let probe = `${this.schema}_probe${rename === undefined ? '' : '_spare'}`;
    await client.query(`CREATE SCHEMA ${quoteIdentifier(probe)}`);
    await client.query(scriptFor(script, probe));
    if (rename !== undefined) {
      const renamed = `${this.schema}_probe_renamed`;
      await client.query(
        `ALTER SCHEMA ${quoteIdentifier(probe)} RENAME TO ${quoteIdentifier(renamed)}`,
      );
      probe = renamed;
      if (rename) await client.query(scriptFor(rename, probe));
    }
    const expected = await schemaFingerprint(client, this.schema);
    const actual = await schemaFingerprint(client, probe);
    const missing = expected.find((line) => !actual.includes(line));
    if (missing !== undefined) return `the copy lacks: ${missing}`;
    const extra = actual.find((line) => !expected.includes(line));
    return extra === undefined ? undefined : `the copy has more: ${extra}`;
  }
}
