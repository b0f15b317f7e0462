import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import type pg from 'pg';
import { qualifiedName } from '../../shared/identifiers.js';
import { inTransaction } from '../../connection/sessions.js';
import { fingerprintDifference, withSchemaPlaceholder } from '../../catalog/fingerprints.js';
import { SchemaIntrospector } from '../../catalog/schema-introspector.js';
import { historyMismatch } from '../../catalog/schema-history.js';
import { holdTenantLock } from '../tenant-locks.js';
import { NO_SCOPE } from '../../connection/row-scope.js';
import { MIGRATIONS_TABLE } from '../../migrations/migration-history.js';
import { PooledTierDisabledError } from '../pooled/pooled.errors.js';
import type { ResolvedPooledTier, TenantTier } from '../tenant-tier.js';
import { importPooledRows, pooledTables, setScope } from './pooled-transfer.js';
import type { TenantInfo } from '../registry/tenant-info.js';
import {
  columnList,
  copyFailure,
  pauseUserTriggers,
  selectList,
  setSequences,
  truncateAll,
} from './copy-statements.js';
import {
  finishTenant,
  startTenant,
  TenantCopyJob,
  type TenantCopyProgress,
} from './tenant-copy-job.js';
import { TenantExportError, TenantImportError } from './tenant-copy.errors.js';
import {
  digestStream,
  fileDigest,
  MANIFEST,
  readManifest,
  TENANT_EXPORT_FORMAT,
  TENANT_EXPORT_FORMAT_VERSION,
  type TenantExportManifest,
} from './tenant-export-manifest.js';
import { TenantAlreadyExistsError, TenantNotFoundError } from '../tenant.errors.js';

/** What `TenantService.export()` wrote. */
export interface TenantExportResult {
  /** The export directory (absolute). */
  readonly path: string;
  /** Tables exported. */
  readonly tables: number;
  /** Rows exported, over all tables. */
  readonly rows: number;
  /** Bytes of data written (compressed). */
  readonly bytes: number;
}

/** Options of `TenantService.export()`. */
export interface ExportTenantOptions {
  /** Called after each table. */
  onProgress?: (progress: TenantCopyProgress) => void;
}

/** Options of `TenantService.import()`. */
export interface ImportTenantOptions {
  /** The id of the tenant created. Default: the exported tenant's id. */
  id?: string;
  /** Its metadata. Default: the exported tenant's. */
  metadata?: Record<string, unknown>;
  /**
   * Its tier. Default: `'schema'`, whatever the exported tenant's. `'pooled'` loads the rows into
   * the pooled tables; the pooled schema must be at the export's migration files.
   */
  tier?: TenantTier;
  /** Called after each table. */
  onProgress?: (progress: TenantCopyProgress) => void;
}

/**
 * Export of a tenant to a directory (one consistent snapshot) and import of such a directory
 * into this application's database, all or nothing.
 */
export class TenantTransfer extends TenantCopyJob {
  async export(
    id: string,
    path: string,
    options: ExportTenantOptions,
  ): Promise<TenantExportResult> {
    const schema = this.registry.schemaFor(id);
    const dir = resolve(path);
    const files = await this.files();
    // What a failure removes: the target, or the first missing parent created for it.
    const created = (await makeExportDir(id, dir)) ?? dir;
    const session = await this.session('export');
    const { client } = session;
    try {
      await mkdir(join(dir, 'data'));
      const release = await holdTenantLock(client, schema);
      let manifest: TenantExportManifest;
      try {
        manifest = await inTransaction(
          client,
          async () => {
            const row = await this.registry.store.one(id, client);
            if (row?.status !== 'active' && row?.status !== 'suspended') {
              throw new TenantNotFoundError(id);
            }
            // A pooled tenant's tables are the pooled schema's, read under its scope.
            const pooled = row.tier === 'pooled' ? this.#pooledOptions() : undefined;
            const home = pooled?.schema ?? schema;
            const catalog = new SchemaIntrospector(client, home);
            const history = await catalog.history();
            const fingerprint = pooled ? [] : await catalog.definitionFingerprint();
            const tables = pooled ? await pooledTables(client, pooled) : await catalog.tables();
            const sequences = await catalog.sequencePositions();
            const written: TenantExportManifest['tables'][number][] = [];
            for (const [i, t] of tables.entries()) {
              const file = `data/${String(i + 1).padStart(4, '0')}.copy.gz`;
              const digest = digestStream();
              if (pooled) {
                const shared = t.name === MIGRATIONS_TABLE;
                await setScope(client, shared ? NO_SCOPE : { role: pooled.role, tenantId: id });
              }
              const stream = client.query(
                copyTo(
                  `COPY (SELECT ${selectList(t.columns)} FROM ${qualifiedName(home, t.name)}) TO STDOUT`,
                ),
              );
              await pipeline(stream, createGzip(), digest, createWriteStream(join(dir, file)));
              written.push({
                name: t.name,
                columns: t.columns,
                file,
                rows: stream.rowCount,
                ...digest.result(),
              });
              options.onProgress?.({
                table: t.name,
                rows: stream.rowCount,
                done: i + 1,
                total: tables.length,
              });
            }
            return {
              format: TENANT_EXPORT_FORMAT,
              formatVersion: TENANT_EXPORT_FORMAT_VERSION,
              exportedAt: new Date().toISOString(),
              tenant: {
                id,
                schema,
                status: row.status,
                metadata: row.metadata,
                createdAt: row.created_at.toISOString(),
                tier: row.tier,
              },
              migrations: history.map((h) => {
                const file = files[h.version - 1];
                return file?.checksum === h.checksum ? { ...h, sql: file.sql } : h;
              }),
              fingerprint,
              tables: written,
              sequences,
            };
          },
          'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY',
        );
      } finally {
        await release();
      }
      // The manifest last: a directory without one is an unfinished export.
      await writeFile(join(dir, MANIFEST), JSON.stringify(manifest, null, 2));
      return {
        path: dir,
        tables: manifest.tables.length,
        rows: manifest.tables.reduce((n, t) => n + t.rows, 0),
        bytes: manifest.tables.reduce((n, t) => n + t.bytes, 0),
      };
    } catch (err) {
      await rm(created, { recursive: true, force: true });
      if (err instanceof TenantNotFoundError) throw err;
      throw new TenantExportError(id, dir, (err as Error).message, { cause: err });
    } finally {
      await session.close();
    }
  }

  async import(path: string, options: ImportTenantOptions): Promise<TenantInfo> {
    const dir = resolve(path);
    const manifest = await readManifest(dir);
    for (const t of manifest.tables) {
      const actual = await fileDigest(join(dir, t.file)).catch((err: Error) => {
        throw new TenantImportError(dir, 'corrupt', `cannot read ${t.file}: ${err.message}`);
      });
      if (actual.sha256 !== t.sha256 || actual.bytes !== t.bytes) {
        throw new TenantImportError(
          dir,
          'corrupt',
          `${t.file} (table ${t.name}) does not match its checksum in the manifest`,
        );
      }
    }
    const files = await this.files();
    const mismatch = historyMismatch(manifest.migrations, files);
    if (mismatch) {
      throw new TenantImportError(
        dir,
        'migrations',
        `the export's migration history ${mismatch}. Import it into an application with the same migration files (or newer ones).`,
      );
    }
    const id = options.id ?? manifest.tenant.id;
    const schema = this.registry.schemaFor(id);
    const metadata = options.metadata ?? manifest.tenant.metadata;
    if (options.tier === 'pooled') {
      return this.#importPooled(dir, manifest, { id, schema, metadata }, options.onProgress);
    }
    const applied = manifest.migrations.length;
    return this.#importing(dir, id, async (client) => {
      await startTenant(
        client,
        this.registry,
        this.runner,
        { id, schema, metadata },
        files.slice(0, applied),
        this.beforeCreateSchema,
      );
      const catalog = new SchemaIntrospector(client, schema);
      // A pooled tenant's export has no fingerprint (its tables were the pooled schema's):
      // the replayed history and the tables and columns checked below stand for it.
      const difference =
        manifest.tenant.tier !== 'pooled' &&
        fingerprintDifference(
          manifest.fingerprint.map((line) => withSchemaPlaceholder(line, manifest.tenant.schema)),
          await catalog.definitionFingerprint(),
        );
      if (difference) {
        throw new TenantImportError(
          dir,
          'schema',
          `the migrations built a schema that differs from the exported one: ${difference}`,
        );
      }
      const tables = await catalog.tables();
      const built = tables.map((t) => `${t.name}(${t.columns.join(',')})`).sort();
      const exported = manifest.tables.map((t) => `${t.name}(${t.columns.join(',')})`).sort();
      if (JSON.stringify(built) !== JSON.stringify(exported)) {
        throw new TenantImportError(
          dir,
          'schema',
          'the manifest lists other tables or columns than the migrations built',
        );
      }
      await truncateAll(client, schema, tables);
      const resumeTriggers = await pauseUserTriggers(client, schema, tables);
      for (const [i, t] of manifest.tables.entries()) {
        const stream = client.query(
          copyFrom(`COPY ${qualifiedName(schema, t.name)} ${columnList(t.columns)} FROM STDIN`),
        );
        await pipeline(createReadStream(join(dir, t.file)), createGunzip(), stream);
        if (stream.rowCount !== t.rows) {
          throw new TenantImportError(
            dir,
            'corrupt',
            `table ${t.name} received ${stream.rowCount} rows; the manifest says ${t.rows}`,
          );
        }
        options.onProgress?.({
          table: t.name,
          rows: t.rows,
          done: i + 1,
          total: manifest.tables.length,
        });
      }
      await resumeTriggers();
      await setSequences(client, schema, manifest.sequences);
      // An export older than this application's files is brought up to date here.
      const later = files.slice(applied);
      if (later.some((f) => !f.transactional)) {
        throw new TenantImportError(
          dir,
          'migrations',
          'a migration newer than the export is marked no-transaction; import into an application at the export version, then migrate',
        );
      }
      if (later.length > 0) await this.runner.applyInTransaction(client, schema, later);
      await finishTenant(client, this.registry, id, files, files.length);
    });
  }

  /**
   * An import into the pooled tier: the tenant's row and its rows in the shared tables, in one
   * transaction under its lock. The pooled schema must be at the export's migration files.
   */
  async #importPooled(
    dir: string,
    manifest: TenantExportManifest,
    tenant: { id: string; schema: string; metadata: Record<string, unknown> },
    onProgress?: (progress: TenantCopyProgress) => void,
  ): Promise<TenantInfo> {
    const pooled = this.#pooledOptions();
    await this.pooled!.ready();
    const files = await this.files();
    return this.#importing(dir, tenant.id, (client) =>
      importPooledRows(client, {
        registry: this.registry,
        pooled,
        dir,
        manifest,
        tenant,
        files,
        onProgress,
      }),
    );
  }

  /**
   * Runs an import's `load` in one transaction on a session of its own (any failure but a
   * refusal becomes `TenantImportError` `failed`), then reads the new tenant back.
   */
  async #importing(
    dir: string,
    id: string,
    load: (client: pg.ClientBase) => Promise<void>,
  ): Promise<TenantInfo> {
    const session = await this.session('import');
    try {
      await inTransaction(session.client, () => load(session.client));
    } catch (err) {
      if (err instanceof TenantImportError || err instanceof TenantAlreadyExistsError) throw err;
      throw new TenantImportError(dir, 'failed', copyFailure(err), { cause: err });
    } finally {
      await session.close();
    }
    const entry = await this.registry.refresh(id);
    if (!entry) throw new TenantNotFoundError(id);
    return entry.info;
  }

  /** `tenancy.pooled` resolved. @throws PooledTierDisabledError when the tier is off */
  #pooledOptions(): ResolvedPooledTier {
    if (!this.pooled) throw new PooledTierDisabledError();
    return this.pooled.options;
  }
}

/**
 * Creates the export directory `dir`, and its missing parents as `mkdir -p` does; never reuses
 * an existing path. Returns the first parent it created, if any (a failed export removes it).
 * @throws TenantExportError with the true reason: the path exists, or a parent cannot be made
 */
async function makeExportDir(id: string, dir: string): Promise<string | undefined> {
  const parent = dirname(dir);
  let createdParent: string | undefined;
  try {
    createdParent = await mkdir(parent, { recursive: true });
  } catch (err) {
    throw new TenantExportError(
      id,
      dir,
      `cannot create its parent directory ${parent} (${(err as Error).message})`,
      { cause: err },
    );
  }
  try {
    await mkdir(dir);
    return createdParent;
  } catch (err) {
    if (createdParent) await rm(createdParent, { recursive: true, force: true });
    const exists = (err as NodeJS.ErrnoException).code === 'EEXIST';
    throw new TenantExportError(
      id,
      dir,
      exists
        ? 'the path already exists, and an export never writes into an existing path; choose a new one'
        : `cannot create the directory (${(err as Error).message})`,
      { cause: err },
    );
  }
}
