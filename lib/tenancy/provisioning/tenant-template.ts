import type { LoggerService } from '@nestjs/common';
import type pg from 'pg';
import { quoteIdentifier } from '../../shared/identifiers.js';
import type { MigrationFile } from '../../migrations/migration-files.js';
import type { MigrationRunner } from '../../migrations/migration-runner.js';
import { inTransaction, openSession, type SessionTracker } from '../../connection/sessions.js';
import { lockTenant, tryLockTenantShared } from '../tenant-locks.js';
import { migrationsDigest } from '../tenant-migrations-digest.js';
import {
  cloneableFiles,
  copyTemplate,
  templateHistory,
  TemplateSnapshots,
  type TemplateHistoryRow,
} from './template-snapshot.js';
import { TemplateSpares, type SpareOptions } from './template-spares.js';

/**
 * Name of the template schema of a registry: `<registrySchema>$template`. The `$` keeps it out
 * of every tenant's name under the default id pattern, and makes PostgreSQL always print it
 * quoted, which is what lets a clone re-point it reliably.
 */
export function templateSchemaFor(registrySchema: string): string {
  return `${registrySchema}$template`;
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
 * Faster still, spares (see `TemplateSpares`): copies made ahead of time, one of which
 * `create()` renames to the tenant's schema. That path is checked the same way (a copy renamed
 * in the scratch transaction must have the template's fingerprint). Spares of other files are
 * dropped by `update()`; new ones are made there and, in the background, after a create took one.
 */
export class TenantTemplate {
  readonly #snapshots: TemplateSnapshots;
  readonly #spares: TemplateSpares;
  /** Checksum of the schema-dependent file last announced. */
  #announced: string | undefined;

  constructor(
    /** The template schema's name. */
    readonly schema: string,
    private readonly runner: MigrationRunner,
    private readonly connection: pg.ClientConfig,
    private readonly files: () => Promise<readonly MigrationFile[]>,
    private readonly logger: LoggerService,
    private readonly tracker?: SessionTracker,
    spares: SpareOptions = { registrySchema: '', count: 0 },
  ) {
    this.#snapshots = new TemplateSnapshots(schema, logger);
    this.#spares = new TemplateSpares(
      spares,
      this.#snapshots,
      runner,
      logger,
      (fn) => this.#withSession(fn),
      tracker,
    );
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
    const known = this.#snapshots.current;
    if (
      known?.key === migrationsDigest(cloneable, cloneable.length) &&
      (await this.#spares.adopt(client, target, known))
    ) {
      return cloneable.length;
    }
    // Shared: any number of creates clone at once; a migration of the template waits for them,
    // and a create never waits for a migration of the template (it replays instead).
    if (!(await tryLockTenantShared(client, this.schema))) return 0;
    const snapshot = await this.#snapshots.for(client, cloneable);
    if (snapshot?.script === undefined) return 0;
    if (snapshot === known || !(await this.#spares.adopt(client, target, snapshot))) {
      await this.runner.applyInTransaction(client, target, []);
      await copyTemplate(client, this.schema, snapshot.script, target);
    }
    return cloneable.length;
  }

  /**
   * Starts making spares in the background when a create took one (or found none), once its
   * transaction has ended. Never throws; a failure is logged.
   */
  replenish(): void {
    this.#spares.replenish();
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

  async #update(): Promise<void> {
    const all = await this.files();
    this.#announceSchemaDependent(all);
    let current = false;
    await this.#withSession(async (client, files) => {
      const history = await inTransaction(client, () => templateHistory(client, this.schema));
      if (history && this.#stale(history, files, all)) {
        // Built from files that changed, or holding one that is not copied: start again.
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
          ? this.#snapshots.for(client, files)
          : undefined,
      );
      await this.#spares.prune(client, snapshot?.key);
      current = true;
    });
    if (current) await this.#spares.refill();
  }

  /** Says once per file which file ends the copy because it runs schema-dependent code. */
  #announceSchemaDependent(files: readonly MigrationFile[]): void {
    const stop = files[cloneableFiles(files).length];
    if (stop?.schemaDependent === undefined || this.#announced === stop.checksum) return;
    this.#announced = stop.checksum;
    this.logger.log(
      `Tenants are copied from the template schema "${this.schema}" up to the file before ${stop.name}, and replay it and every later file: it runs code that depends on the schema's name (${stop.schemaDependent}).`,
    );
  }

  /**
   * A file the template applied differs from this instance's file of that number, or is one
   * this instance has but does not copy (it runs schema-dependent code: an earlier release,
   * which did not tell, applied it to the template), although the template is not simply ahead
   * with files this instance does not have.
   */
  #stale(
    history: readonly TemplateHistoryRow[],
    files: readonly MigrationFile[],
    all: readonly MigrationFile[],
  ): boolean {
    return history.some((row) => {
      const file = files[row.version - 1];
      if (file !== undefined) return file.checksum !== row.checksum;
      return all[row.version - 1]?.checksum === row.checksum;
    });
  }
}
