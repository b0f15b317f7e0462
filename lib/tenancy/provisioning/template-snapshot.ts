// The clone script of the template schema, built once per version of its files and proven
// exact before any tenant is copied with it.
import type { LoggerService } from '@nestjs/common';
import type pg from 'pg';
import { quoteIdentifier } from '../../shared/identifiers.js';
import type { MigrationFile } from '../../migrations/migration-files.js';
import { historyTable } from '../../migrations/migration-history.js';
import { UncloneableSchemaError } from '../../catalog/catalog.errors.js';
import { firstDifference } from '../../catalog/fingerprints.js';
import { SchemaIntrospector } from '../../catalog/schema-introspector.js';
import { scriptFor } from '../../catalog/script-target.js';
import { migrationsDigest } from '../tenant-migrations-digest.js';

/** The clone script for one version of the template, or why it cannot be cloned. */
export interface Snapshot {
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

/** A row of the template's history. */
export interface TemplateHistoryRow {
  readonly version: number;
  readonly checksum: string;
}

/**
 * The files a template holds: the leading transactional files before the first one marked
 * `-- pg-tenancy: no-template`. A tenant is cloned from these and replays the rest.
 */
export function cloneableFiles(files: readonly MigrationFile[]): readonly MigrationFile[] {
  const stop = files.findIndex((f) => !f.transactional || f.cloneable === false);
  return stop < 0 ? files : files.slice(0, stop);
}

/** The history of the template schema `schema`, or `undefined` when it has none. */
export async function templateHistory(
  client: pg.ClientBase,
  schema: string,
): Promise<TemplateHistoryRow[] | undefined> {
  const table = historyTable(schema);
  const found = await client.query<{ present: boolean }>(
    'SELECT to_regclass($1) IS NOT NULL AS present',
    [table],
  );
  if (!found.rows[0].present) return undefined;
  const { rows } = await client.query<TemplateHistoryRow>(
    `SELECT version, checksum FROM ${table} ORDER BY version`,
  );
  return rows;
}

/** Runs the clone `script` of template schema `template` into `target`, and copies its history rows. */
export async function copyTemplate(
  client: pg.ClientBase,
  template: string,
  script: string,
  target: string,
): Promise<void> {
  await client.query(
    scriptFor(script, target) +
      `INSERT INTO ${historyTable(target)} (version, name, checksum, duration_ms)
         SELECT version, name, checksum, duration_ms FROM ${historyTable(template)}
          ORDER BY version`,
  );
}

/**
 * The snapshot of the template schema `schema` for the version of the files it holds, kept
 * once built: each version's script is generated from the catalog and checked once per instance.
 */
export class TemplateSnapshots {
  #current: Snapshot | undefined;

  constructor(
    /** The template schema's name. */
    readonly schema: string,
    private readonly logger: LoggerService,
  ) {}

  /** The latest snapshot built, if any. */
  get current(): Snapshot | undefined {
    return this.#current;
  }

  /**
   * The clone script when the template holds exactly `files`; built and checked on first use
   * for each version of the files, inside a savepoint so that the caller's transaction goes on
   * whatever happens.
   */
  async for(client: pg.ClientBase, files: readonly MigrationFile[]): Promise<Snapshot | undefined> {
    const history = await templateHistory(client, this.schema);
    if (
      history?.length !== files.length ||
      history.some((row, i) => row.version !== i + 1 || row.checksum !== files[i].checksum)
    ) {
      return undefined;
    }
    const key = migrationsDigest(files, files.length);
    if (this.#current?.key === key) return this.#current;
    await client.query('SAVEPOINT pg_tenancy_template');
    let snapshot: Snapshot;
    let transient = false;
    let spareMismatch: string | undefined;
    try {
      const template = new SchemaIntrospector(client, this.schema);
      const script = await template.cloneScript();
      const mismatch = await this.#check(client, script);
      if (mismatch === undefined) {
        const rename = await template.renameScript();
        spareMismatch = await this.#check(client, script, rename);
        snapshot = { key, script, rename: spareMismatch === undefined ? rename : undefined };
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
    if (spareMismatch !== undefined) {
      this.logger.warn(
        `Spare schemas are not used for the template schema "${this.schema}": a copy renamed to a tenant's name is not exact (${spareMismatch}). Tenants are copied from the template instead.`,
      );
    }
    if (snapshot.uncloneable !== undefined) {
      this.logger.warn(
        `Tenants are created by replaying their migrations, not from the template schema "${this.schema}": it cannot be cloned exactly (${snapshot.uncloneable}). Mark the migration responsible with "-- pg-tenancy: no-template" to clone the files before it.`,
      );
    }
    this.#current = snapshot;
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
    const expected = await new SchemaIntrospector(client, this.schema).exactFingerprint();
    const actual = await new SchemaIntrospector(client, probe).exactFingerprint();
    const difference = firstDifference(expected, actual);
    if (difference === undefined) return undefined;
    return 'missing' in difference
      ? `the copy lacks: ${difference.missing}`
      : `the copy has more: ${difference.extra}`;
  }
}
