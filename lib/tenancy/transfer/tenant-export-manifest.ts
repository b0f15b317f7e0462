// The export format: an export directory's manifest, read and checked, and the digests of its
// data files.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import type { MigrationHistoryEntry } from '../../catalog/schema-history.js';
import type { SequencePosition } from '../../catalog/schema-tables.js';
import { TenantImportError } from './tenant-copy.errors.js';

/** The `format` field of every export manifest. */
export const TENANT_EXPORT_FORMAT = 'nestjs-pg-tenancy/tenant-export';
/** The manifest version this release writes and reads. */
export const TENANT_EXPORT_FORMAT_VERSION = 1;
/** The manifest's file name in an export directory. */
export const MANIFEST = 'manifest.json';

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
   * application must have the same files). `sql` is the file's text (an SQL template) when the
   * exporting application had it.
   */
  readonly migrations: readonly (MigrationHistoryEntry & {
    /** The file's text (an SQL template), when the exporting application had the same file. */
    readonly sql?: string;
  })[];
  /** The schema's definition fingerprint (its name as `{{schema}}`), checked on import. */
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

/** Reads and checks an export's manifest. @throws TenantImportError (`format`) */
export async function readManifest(dir: string): Promise<TenantExportManifest> {
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
export function digestStream(): Transform & { result(): { sha256: string; bytes: number } } {
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

export async function fileDigest(file: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}
