import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { inTransaction } from '../../connection/sessions.js';
import {
  finishTenant,
  startTenant,
  TenantCopyJob,
  type TenantCopyProgress,
} from './tenant-copy.js';
import { TenantExportError, TenantImportError } from './tenant-copy.errors.js';
import { holdTenantLock } from '../tenant-locks.js';
import type { TenantInfo } from '../registry/tenant-info.js';
import {
  catalogTables,
  columnList,
  fingerprintDifference,
  historyMismatch,
  qualified,
  readHistory,
  schemaFingerprint,
  selectList,
  sequenceValues,
  setSequences,
  setUserTriggers,
  truncateAll,
  type MigrationHistoryEntry,
  type SequencePosition,
} from '../../catalog/tenant-schema-catalog.js';
import { TenantAlreadyExistsError, TenantNotFoundError } from '../tenant.errors.js';

/** The `format` field of every export manifest. */
export const TENANT_EXPORT_FORMAT = 'nestjs-pg-tenancy/tenant-export';
/** The manifest version this release writes and reads. */
export const TENANT_EXPORT_FORMAT_VERSION = 1;
const MANIFEST = 'manifest.json';

/**
 * `manifest.json` of an export directory (format version 1). Beside it, `data/NNNN.copy.gz` holds
 * each table's rows in PostgreSQL's COPY text format, gzipped.
 */
export interface TenantExportManifest {
  /** Always {@link TENANT_EXPORT_FORMAT}. */
  readonly format: typeof TENANT_EXPORT_FORMAT;
  /** {@link TENANT_EXPORT_FORMAT_VERSION} when written. */
  readonly formatVersion: number;
  /** When the snapshot was taken (ISO 8601). */
  readonly exportedAt: string;
  /** The tenant's registry row as exported. */
  readonly tenant: {
    /** Its id (the default id on import). */
    readonly id: string;
    /** Its schema in the exporting database. */
    readonly schema: string;
    /** Its status then (an import is always `active`). */
    readonly status: string;
    /** Its metadata (the default on import). */
    readonly metadata: Record<string, unknown>;
    /** When it was created (ISO 8601). */
    readonly createdAt: string;
  };
  /**
   * The schema's migration history: the DDL is these files, replayed on import (the importing
   * application must have the same files). `sql` is the file's template text when the exporting
   * application had it.
   */
  readonly migrations: readonly (MigrationHistoryEntry & {
    /** The file's template text, when the exporting application had the same file. */
    readonly sql?: string;
  })[];
  /** The schema's catalog with its name as `{{schema}}` (see the README), checked on import. */
  readonly fingerprint: readonly string[];
  /** Tables in an order that satisfies foreign keys, with their data file. */
  readonly tables: readonly {
    /** The table's name (unqualified). */
    readonly name: string;
    /** The columns in the file, in order (generated columns are left out). */
    readonly columns: readonly string[];
    /** Path relative to the export directory. */
    readonly file: string;
    /** Rows in the file. */
    readonly rows: number;
    /** Size of the file in bytes. */
    readonly bytes: number;
    /** SHA-256 (hex) of the file. */
    readonly sha256: string;
  }[];
  /** Positions of the schema's sequences. */
  readonly sequences: readonly SequencePosition[];
}

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
    try {
      await mkdir(dir);
    } catch (err) {
      throw new TenantExportError(id, dir, 'the directory already exists; choose a new path', {
        cause: err,
      });
    }
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
            const history = await readHistory(client, schema);
            const fingerprint = await schemaFingerprint(client, schema);
            const tables = await catalogTables(client, schema);
            const sequences = await sequenceValues(client, schema);
            const written: TenantExportManifest['tables'][number][] = [];
            for (const [i, t] of tables.entries()) {
              const file = `data/${String(i + 1).padStart(4, '0')}.copy.gz`;
              const digest = digestStream();
              const stream = client.query(
                copyTo(
                  `COPY (SELECT ${selectList(t.columns)} FROM ${qualified(schema, t.name)}) TO STDOUT`,
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
      await rm(dir, { recursive: true, force: true });
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
    const applied = manifest.migrations.length;
    const session = await this.session('import');
    const { client } = session;
    try {
      await inTransaction(client, async () => {
        await startTenant(
          client,
          this.registry,
          this.runner,
          { id, schema, metadata: options.metadata ?? manifest.tenant.metadata },
          files.slice(0, applied),
          this.beforeCreateSchema,
        );
        const difference = fingerprintDifference(
          manifest.fingerprint,
          await schemaFingerprint(client, schema),
        );
        if (difference) {
          throw new TenantImportError(
            dir,
            'schema',
            `the migrations built a schema that differs from the exported one: ${difference}`,
          );
        }
        const tables = await catalogTables(client, schema);
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
        await setUserTriggers(client, schema, tables, false);
        for (const [i, t] of manifest.tables.entries()) {
          const stream = client.query(
            copyFrom(`COPY ${qualified(schema, t.name)} ${columnList(t.columns)} FROM STDIN`),
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
        await setUserTriggers(client, schema, tables, true);
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
    } catch (err) {
      if (err instanceof TenantImportError || err instanceof TenantAlreadyExistsError) throw err;
      throw new TenantImportError(dir, 'failed', (err as Error).message, { cause: err });
    } finally {
      await session.close();
    }
    const entry = await this.registry.refresh(id);
    if (!entry) throw new TenantNotFoundError(id);
    return entry.info;
  }
}

/** Reads and checks an export's manifest. @throws TenantImportError (`format`) */
async function readManifest(dir: string): Promise<TenantExportManifest> {
  let manifest: TenantExportManifest;
  try {
    manifest = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8')) as TenantExportManifest;
  } catch (err) {
    throw new TenantImportError(
      dir,
      'format',
      `cannot read ${MANIFEST} (${(err as Error).message}); an export without one is unfinished`,
      { cause: err },
    );
  }
  if (manifest?.format !== TENANT_EXPORT_FORMAT) {
    throw new TenantImportError(dir, 'format', `${MANIFEST} is not a tenant export manifest`);
  }
  if (manifest.formatVersion !== TENANT_EXPORT_FORMAT_VERSION) {
    throw new TenantImportError(
      dir,
      'format',
      `format version ${String(manifest.formatVersion)} is not readable by this release (it reads version ${TENANT_EXPORT_FORMAT_VERSION}); import with the release that wrote it`,
    );
  }
  const safe = /^data\/\d{4}\.copy\.gz$/;
  const bad = manifest.tables.find((t) => !safe.test(t.file));
  if (bad) throw new TenantImportError(dir, 'format', `unexpected data file name "${bad.file}"`);
  return manifest;
}

/** A pass-through stream that hashes and counts what flows through it. */
function digestStream(): Transform & { result(): { sha256: string; bytes: number } } {
  const hash = createHash('sha256');
  let bytes = 0;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  return Object.assign(stream, { result: () => ({ sha256: hash.digest('hex'), bytes }) });
}

async function fileDigest(file: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}
