// Spare schemas: copies of the template schema made ahead of time, one of which a create renames
// to the new tenant's schema.
import type { LoggerService } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { DatabaseShuttingDownError } from '../../shared/errors.js';
import { qualifiedName, quoteIdentifier } from '../../shared/identifiers.js';
import type { MigrationFile } from '../../migrations/migration-files.js';
import { historyTable } from '../../migrations/migration-history.js';
import type { MigrationRunner } from '../../migrations/migration-runner.js';
import { inTransaction, type SessionTracker } from '../../connection/sessions.js';
import { scriptFor } from '../../catalog/script-target.js';
import { lockTenant, tryLockTenantShared } from '../tenant-locks.js';
import { copyTemplate, type Snapshot, type TemplateSnapshots } from './template-snapshot.js';

/** Where a registry keeps its spare schemas, and how many. */
export interface SpareOptions {
  /** The registry schema: spares are listed in a table there and named after it. */
  readonly registrySchema: string;
  /** How many to keep ready; `0` keeps none (and drops those left). */
  readonly count: number;
}

/** Name of the table listing a registry's spare schemas. */
const SPARES_TABLE = 'tenant_template_spares';

/**
 * The spares of one template schema: `<registrySchema>$spare_<hex>`, listed with the digest of
 * their files in `<registrySchema>.tenant_template_spares`. A create takes one of its version
 * (`adopt`), and more are made in the background once it has committed (`replenish`); spares
 * of other files are dropped when the template is brought up to date (`prune`).
 */
export class TemplateSpares {
  /** The spares table is known to exist (this instance made sure of it). */
  #ready = false;
  /** A create took a spare, or found none: make more after it commits. */
  #wanted = false;
  #refilling: Promise<void> | undefined;
  #refillAgain = false;
  #stopped = false;

  constructor(
    private readonly options: SpareOptions,
    private readonly snapshots: TemplateSnapshots,
    private readonly runner: MigrationRunner,
    private readonly logger: LoggerService,
    /** Runs `fn` on a session of the template's own with the template's files, unless there are none. */
    private readonly withSession: (
      fn: (client: pg.Client, files: readonly MigrationFile[]) => Promise<void>,
    ) => Promise<void>,
    tracker?: SessionTracker,
  ) {
    tracker?.onDrain?.(() => {
      this.#stopped = true;
    });
  }

  /** `"registry"."tenant_template_spares"`. */
  get #table(): string {
    return qualifiedName(this.options.registrySchema, SPARES_TABLE);
  }

  /** Key of the advisory lock under which spares are made and dropped (one refill at a time). */
  get #lock(): string {
    return `${this.options.registrySchema}$spares`;
  }

  /**
   * Takes a spare made from this version of the template (`FOR UPDATE SKIP LOCKED`: concurrent
   * creates never take the same one, and a create that rolls back puts it back), drops the
   * empty `target` made by the caller and renames the spare to it. `false` when there is none
   * (or it could not be used): the caller copies the template instead.
   */
  async adopt(client: pg.ClientBase, target: string, snapshot: Snapshot): Promise<boolean> {
    if (this.options.count === 0 || !this.#ready || snapshot.rename === undefined) {
      return false;
    }
    this.#wanted = true;
    const { rows } = await client.query<{ schema_name: string }>(
      `DELETE FROM ${this.#table} WHERE schema_name =
         (SELECT schema_name FROM ${this.#table} WHERE digest = $1
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
         UPDATE ${historyTable(target)} SET applied_at = now();
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

  /**
   * Starts making spares in the background when a create took one (or found none), once its
   * transaction has ended. Never throws; a failure is logged.
   */
  replenish(): void {
    if (!this.#wanted || this.#stopped) return;
    this.#wanted = false;
    this.#refillSoon();
  }

  #refillSoon(): void {
    if (this.#refilling) {
      this.#refillAgain = true;
      return;
    }
    this.#refilling = (async () => {
      do {
        this.#refillAgain = false;
        await this.refill();
      } while (this.#refillAgain && !this.#stopped);
    })()
      .catch((err: unknown) => {
        if (err instanceof DatabaseShuttingDownError || this.#stopped) return;
        this.logger.warn(
          `Spare schemas for new tenants could not be made: ${(err as Error).message}. Tenants are copied from the template schema "${this.snapshots.schema}" meanwhile.`,
        );
      })
      .finally(() => {
        this.#refilling = undefined;
      });
  }

  /** Makes spares, one transaction each, until there are `count` of the current version. */
  async refill(): Promise<void> {
    if (this.options.count === 0 || !this.#ready || this.#stopped) return;
    const template = this.snapshots.schema;
    await this.withSession(async (client, files) => {
      while (!this.#stopped) {
        const made = await inTransaction(client, async () => {
          if (!(await tryLockTenantShared(client, template))) return false;
          await lockTenant(client, this.#lock);
          const snapshot = await this.snapshots.for(client, files);
          if (snapshot?.script === undefined || snapshot.rename === undefined) return false;
          const { rows } = await client.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM ${this.#table} WHERE digest = $1`,
            [snapshot.key],
          );
          if (rows[0].n >= this.options.count) return false;
          const spare = `${this.options.registrySchema}$spare_${randomBytes(6).toString('hex')}`;
          await client.query(`CREATE SCHEMA ${quoteIdentifier(spare)}`);
          await this.runner.applyInTransaction(client, spare, []);
          await copyTemplate(client, template, snapshot.script, spare);
          await client.query(`INSERT INTO ${this.#table} (schema_name, digest) VALUES ($1, $2)`, [
            spare,
            snapshot.key,
          ]);
          return true;
        });
        if (!made) return;
      }
    });
  }

  /**
   * Makes sure the spares table exists, and drops the spares that are not of `key` (made from
   * other files), or all of them when `count` is `0`.
   */
  async prune(client: pg.ClientBase, key: string | undefined): Promise<void> {
    if (!this.options.registrySchema) return;
    await inTransaction(client, async () => {
      await lockTenant(client, this.#lock);
      if (this.options.count > 0) {
        await client.query(
          `CREATE TABLE IF NOT EXISTS ${this.#table} (
             schema_name text PRIMARY KEY,
             digest text NOT NULL,
             made_at timestamptz NOT NULL DEFAULT now())`,
        );
      } else {
        const found = await client.query<{ present: boolean }>(
          'SELECT to_regclass($1) IS NOT NULL AS present',
          [this.#table],
        );
        if (!found.rows[0].present) return;
      }
      // Without a key (the template was busy) nothing is known to be stale: keep them all.
      if (this.options.count > 0 && key === undefined) return;
      const { rows } = await client.query<{ schema_name: string }>(
        `DELETE FROM ${this.#table} WHERE digest IS DISTINCT FROM $1 RETURNING schema_name`,
        [this.options.count > 0 ? key : null],
      );
      for (const { schema_name: spare } of rows) {
        await client.query(`DROP SCHEMA IF EXISTS ${quoteIdentifier(spare)} CASCADE`);
      }
    });
    this.#ready = this.options.count > 0;
  }
}
