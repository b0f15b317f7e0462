// The export format: an export directory's manifest, read and checked, and the digests of its
// data files.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import type { MigrationHistoryEntry } from '../../catalog/schema-history.js';
import type { SequencePosition } from '../../catalog/schema-tables.js';
import type { TenantTier } from '../tenant-tier.js';
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
    /**
     * Its tier then; absent in exports from before the pooled tier (`schema`). A `pooled`
     * tenant's export has the same tables and columns (no tenant column) and an empty
     * `fingerprint`: its tables were the pooled schema's.
     */
    readonly tier?: TenantTier;
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

/**
 * Reads and checks an export's manifest: its format and version, then the type and range of
 * every field the importer reads, before anything is written.
 * @throws TenantImportError (`format`; `field` names a malformed field)
 */
export async function readManifest(dir: string): Promise<TenantExportManifest> {
  let manifest: unknown;
  try {
    manifest = JSON.parse(await readFile(join(dir, MANIFEST), 'utf8'));
  } catch (err) {
    throw new TenantImportError(
      dir,
      'format',
      `cannot read ${MANIFEST} (${(err as Error).message}); an export without one is unfinished`,
      { cause: err },
    );
  }
  if (!isRecord(manifest) || manifest.format !== TENANT_EXPORT_FORMAT) {
    throw new TenantImportError(dir, 'format', `${MANIFEST} is not a tenant export manifest`);
  }
  if (manifest.formatVersion !== TENANT_EXPORT_FORMAT_VERSION) {
    throw new TenantImportError(
      dir,
      'format',
      `format version ${String(manifest.formatVersion)} is not readable by this release (it reads version ${TENANT_EXPORT_FORMAT_VERSION}); import with the release that wrote it`,
    );
  }
  const problem = manifestProblem(manifest);
  if (problem) {
    throw new TenantImportError(
      dir,
      'format',
      `${MANIFEST} field ${problem.field} ${problem.expected} (found ${found(problem.value)}); the manifest was edited or damaged: use the export as written`,
      { field: problem.field },
    );
  }
  return manifest as unknown as TenantExportManifest;
}

interface ShapeProblem {
  readonly field: string;
  readonly expected: string;
  readonly value: unknown;
}

const HEX_SHA256 = /^[0-9a-f]{64}$/;
const BIGINT_TEXT = /^-?\d{1,19}$/;
const DATA_FILE = /^data\/\d{4}\.copy\.gz$/;

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isText = (v: unknown): v is string => typeof v === 'string' && v !== '';
const isCount = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;

/** The first field (in reading order) of `m` that the importer could not use, or `undefined`. */
function manifestProblem(m: Record<string, unknown>): ShapeProblem | undefined {
  const bad = (field: string, expected: string, value: unknown) => ({ field, expected, value });
  const tenant = m.tenant;
  if (!isRecord(tenant)) return bad('tenant', 'must be an object', tenant);
  if (!isText(tenant.id)) return bad('tenant.id', 'must be a non-empty string', tenant.id);
  if (!isRecord(tenant.metadata)) {
    return bad('tenant.metadata', 'must be an object', tenant.metadata);
  }
  for (const [key, check] of [
    ['migrations', migrationProblem],
    [
      'fingerprint',
      (v: unknown, at: string) =>
        typeof v === 'string' ? undefined : bad(at, 'must be a string', v),
    ],
    ['tables', tableProblem],
    ['sequences', sequenceProblem],
  ] as const) {
    const list = m[key];
    if (!Array.isArray(list)) return bad(key, 'must be an array', list);
    for (const [i, item] of list.entries()) {
      const problem = check(item, `${key}[${i}]`);
      if (problem) return problem;
    }
  }
  const versions = (m.migrations as { version: number }[]).map((e) => e.version);
  const gap = versions.findIndex((v, i) => v !== i + 1);
  if (gap !== -1) {
    return bad(
      `migrations[${gap}].version`,
      `must be ${gap + 1} (versions run 1, 2, 3…)`,
      versions[gap],
    );
  }
  return undefined;
}

function migrationProblem(e: unknown, at: string): ShapeProblem | undefined {
  if (!isRecord(e)) return { field: at, expected: 'must be an object', value: e };
  if (!Number.isSafeInteger(e.version) || (e.version as number) < 1) {
    return { field: `${at}.version`, expected: 'must be a positive integer', value: e.version };
  }
  if (!isText(e.name)) {
    return { field: `${at}.name`, expected: 'must be a non-empty string', value: e.name };
  }
  if (typeof e.checksum !== 'string' || !HEX_SHA256.test(e.checksum)) {
    return { field: `${at}.checksum`, expected: 'must be a SHA-256 in hex', value: e.checksum };
  }
  if (e.sql !== undefined && typeof e.sql !== 'string') {
    return { field: `${at}.sql`, expected: 'must be a string when present', value: e.sql };
  }
  return undefined;
}

function tableProblem(t: unknown, at: string): ShapeProblem | undefined {
  if (!isRecord(t)) return { field: at, expected: 'must be an object', value: t };
  if (!isText(t.name)) {
    return { field: `${at}.name`, expected: 'must be a non-empty string', value: t.name };
  }
  if (!Array.isArray(t.columns) || !t.columns.every(isText)) {
    return { field: `${at}.columns`, expected: 'must be an array of names', value: t.columns };
  }
  if (typeof t.file !== 'string' || !DATA_FILE.test(t.file)) {
    return { field: `${at}.file`, expected: 'must be data/NNNN.copy.gz', value: t.file };
  }
  for (const key of ['rows', 'bytes'] as const) {
    if (!isCount(t[key])) {
      return { field: `${at}.${key}`, expected: 'must be a non-negative integer', value: t[key] };
    }
  }
  if (typeof t.sha256 !== 'string' || !HEX_SHA256.test(t.sha256)) {
    return { field: `${at}.sha256`, expected: 'must be a SHA-256 in hex', value: t.sha256 };
  }
  return undefined;
}

function sequenceProblem(q: unknown, at: string): ShapeProblem | undefined {
  if (!isRecord(q)) return { field: at, expected: 'must be an object', value: q };
  if (!isText(q.name)) {
    return { field: `${at}.name`, expected: 'must be a non-empty string', value: q.name };
  }
  if (typeof q.lastValue !== 'string' || !BIGINT_TEXT.test(q.lastValue)) {
    return { field: `${at}.lastValue`, expected: 'must be an integer as text', value: q.lastValue };
  }
  if (typeof q.isCalled !== 'boolean') {
    return { field: `${at}.isCalled`, expected: 'must be true or false', value: q.isCalled };
  }
  return undefined;
}

/** A value as the error shows it: `missing`, or its JSON, cut short. */
function found(value: unknown): string {
  if (value === undefined) return 'missing';
  const text = JSON.stringify(value);
  return text.length > 40 ? `${text.slice(0, 37)}…` : text;
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
