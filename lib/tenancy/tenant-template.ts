import type { LoggerService } from '@nestjs/common';
import type pg from 'pg';
import { quoteIdentifier } from '../core/identifiers.js';
import type { MigrationFile } from '../migrations/migration-files.js';
import { MIGRATIONS_TABLE, type MigrationRunner } from '../migrations/migration-runner.js';
import { inTransaction, openSession, type SessionTracker } from '../pool/sessions.js';
import {
  cloneScript,
  schemaFingerprint,
  scriptFor,
  UncloneableSchemaError,
} from './tenant-catalog.js';
import { lockTenant, tryLockTenantShared } from './tenant-locks.js';
import { migrationsDigest } from './tenant-migrations-digest.js';

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
  readonly uncloneable?: string;
}

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
 */
export class TenantTemplate {
  #snapshot: Snapshot | undefined;

  constructor(
    /** The template schema's name. */
    readonly schema: string,
    private readonly runner: MigrationRunner,
    private readonly connection: pg.ClientConfig,
    private readonly files: () => Promise<readonly MigrationFile[]>,
    private readonly logger: LoggerService,
    private readonly tracker?: SessionTracker,
  ) {}

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
   * Copies the template into `target` (an empty schema created in the caller's open
   * transaction on `client`, with its history table) and records the copied files in its
   * history. Returns how many leading `files` it covered: `0` when it did nothing (the template
   * is missing, busy being migrated, at other files, or not cloneable), so the caller replays.
   */
  async cloneInto(
    client: pg.ClientBase,
    target: string,
    files: readonly MigrationFile[],
  ): Promise<number> {
    const cloneable = cloneableFiles(files);
    if (cloneable.length === 0) return 0;
    // Shared: any number of creates clone at once; a migration of the template waits for them,
    // and a create never waits for a migration of the template (it replays instead).
    if (!(await tryLockTenantShared(client, this.schema))) return 0;
    const snapshot = await this.#snapshotFor(client, cloneable);
    if (snapshot?.script === undefined) return 0;
    const history = `${quoteIdentifier(MIGRATIONS_TABLE)}`;
    await client.query(
      scriptFor(snapshot.script, target) +
        `INSERT INTO ${quoteIdentifier(target)}.${history} (version, name, checksum, duration_ms)
         SELECT version, name, checksum, duration_ms FROM ${quoteIdentifier(this.schema)}.${history}
          ORDER BY version`,
    );
    return cloneable.length;
  }

  async #update(): Promise<void> {
    const files = cloneableFiles(await this.files());
    if (files.length === 0) return;
    const session = await openSession(this.connection, {
      tracker: this.tracker,
      applicationName: 'nestjs-pg-tenancy:template',
    });
    try {
      const { client } = session;
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
      await inTransaction(client, async () => {
        if (await tryLockTenantShared(client, this.schema)) await this.#snapshotFor(client, files);
      });
    } finally {
      await session.close();
    }
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
      snapshot = mismatch === undefined ? { key, script } : { key, uncloneable: mismatch };
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

  /** Runs the script into a scratch schema; the first difference from the template, if any. */
  async #check(client: pg.ClientBase, script: string): Promise<string | undefined> {
    const probe = `${this.schema}_probe`;
    await client.query(`CREATE SCHEMA ${quoteIdentifier(probe)}`);
    await client.query(scriptFor(script, probe));
    const expected = await schemaFingerprint(client, this.schema);
    const actual = await schemaFingerprint(client, probe);
    const missing = expected.find((line) => !actual.includes(line));
    if (missing !== undefined) return `the copy lacks: ${missing}`;
    const extra = actual.find((line) => !expected.includes(line));
    return extra === undefined ? undefined : `the copy has more: ${extra}`;
  }
}
