import { createHash } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { findTransactionControl } from '../core/sql/transaction-control.js';
import { MigrationFilesError, MigrationTransactionControlError } from './migration.errors.js';
import { schemaDependentStatement } from './schema-dependence.js';

/** One migration file, read and checksummed. */
export interface MigrationFile {
  /** The numeric prefix: `3` for `003_add_index.sql`. */
  readonly version: number;
  /** The file name, e.g. `003_add_index.sql`. */
  readonly name: string;
  /**
   * The file's text, before SQL template expansion, with a leading byte-order mark removed and CRLF
   * line ends read as LF, so a Windows checkout runs (and inserts) exactly what a Unix one does.
   */
  readonly sql: string;
  /** SHA-256 of `sql` (the normalised text), hex. */
  readonly checksum: string;
  /**
   * Checksums of the same text with CRLF line ends and/or a byte-order mark, as earlier versions
   * recorded them (over the raw bytes): a history written from either kind of checkout stays
   * valid. Default: none.
   */
  readonly legacyChecksums?: readonly string[];
  /** `false` when the first line is `-- migrate:no-transaction`. */
  readonly transactional: boolean;
  /**
   * `false` when a line of the file's leading comment block is `-- pg-tenancy: no-template`, or
   * when the file runs code that depends on the schema's name (see `schemaDependent`): tenants
   * are never cloned past this file from the template schema, they replay it (and every file
   * after it). Mark files whose effect a copy cannot reproduce, e.g. seed rows computed from
   * `now()` or a function with side effects. Default: `true`.
   */
  readonly cloneable?: boolean;
  /**
   * Set when a statement of the file runs code whose effect can depend on the schema's name
   * while the file is applied (a `DO` block or `CALL` using `{{schema}}`, a statement calling
   * `{{schema}}.fn(…)`): where and why, e.g. `line 3: a DO that uses the schema's name`. Such a
   * file is not `cloneable`. Default: unset.
   */
  readonly schemaDependent?: string;
}

const FILE_NAME = /^(\d+)_([A-Za-z0-9_-]+)\.sql$/;
/** First-line marker for statements that cannot run in a transaction (CREATE INDEX CONCURRENTLY). */
const NO_TRANSACTION_MARKER = /^--\s*migrate:no-transaction\s*$/;
/** A line of the leading comment block: never clone tenants past this file from the template. */
const NO_TEMPLATE_MARKER = /^--\s*pg-tenancy:\s*no-template\s*$/;

/**
 * Reads `NNN_description.sql` files from `dir`, ordered by number. Versions must run 1, 2, 3…
 * without duplicates or gaps, so a mis-numbered file (two developers both adding `004_…`) fails
 * loudly instead of applying in a surprising order.
 *
 * Pass the result as the `source` of {@link MigrationRunner} calls to read a folder once for
 * many schemas.
 *
 * @throws MigrationFilesError naming the offending files.
 *
 * @example
 * const files = await loadMigrationFiles('migrations/tenant');
 * for (const schema of schemas) await runner.migrate(schema, files);
 */
export async function loadMigrationFiles(dir: string): Promise<MigrationFile[]> {
  const folder = resolve(dir);
  let entries: string[];
  try {
    entries = await readdir(folder);
  } catch (err) {
    throw new MigrationFilesError(
      `Cannot read the migrations folder ${folder}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  const wrongCase = entries.filter((e) => /\.sql$/i.test(e) && !e.endsWith('.sql'));
  if (wrongCase.length > 0) {
    throw new MigrationFilesError(
      `Migration files must end in lower-case ".sql": ${wrongCase.sort().join(', ')} in ${folder}. ` +
        'Rename them (they would otherwise be skipped on some systems and applied on others).',
    );
  }
  const sqlFiles = entries.filter((entry) => entry.endsWith('.sql')).sort();
  const badNames = sqlFiles.filter((file) => !FILE_NAME.test(file));
  if (badNames.length > 0) {
    throw new MigrationFilesError(
      `Migration files must be named NNN_description.sql (digits, underscore, letters/digits/-/_): ${badNames.join(', ')} in ${folder}.`,
    );
  }
  const files = await Promise.all(
    sqlFiles.map(async (name): Promise<MigrationFile> => {
      const raw = await readFile(join(folder, name), 'utf8');
      const sql = normaliseText(raw);
      const firstLine = sql.split('\n', 1)[0].trim();
      const dependent = schemaDependentStatement(sql);
      const schemaDependent = dependent && `line ${dependent.line}: ${dependent.reason}`;
      return {
        version: Number(FILE_NAME.exec(name)![1]),
        name: basename(name),
        sql,
        checksum: sha256(sql),
        legacyChecksums: legacyChecksums(sql),
        transactional: !NO_TRANSACTION_MARKER.test(firstLine),
        cloneable:
          schemaDependent === undefined &&
          !leadingComments(sql).some((line) => NO_TEMPLATE_MARKER.test(line)),
        ...(schemaDependent === undefined ? {} : { schemaDependent }),
      };
    }),
  );
  for (const file of files) {
    if (file.transactional) assertNoTransactionControl(file, folder);
  }
  files.sort((a, b) => a.version - b.version);
  for (let i = 0; i < files.length; i++) {
    const file = files[i];
    const previous = files[i - 1];
    if (previous && previous.version === file.version) {
      throw new MigrationFilesError(
        `Two migrations share version ${file.version}: ${previous.name} and ${file.name} in ${folder}. Renumber one of them.`,
      );
    }
    const expected = i + 1;
    if (file.version !== expected) {
      throw new MigrationFilesError(
        `Migration versions must run 1, 2, 3… without gaps: expected version ${expected} but found ${file.name}${previous ? ` after ${previous.name}` : ''} in ${folder}.`,
      );
    }
  }
  return files;
}

/** @throws MigrationTransactionControlError at the first top-level transaction statement. */
function assertNoTransactionControl(file: MigrationFile, folder: string): void {
  const found = findTransactionControl(file.sql);
  if (found) {
    throw new MigrationTransactionControlError(file.name, found.line, found.statement, folder);
  }
}

/** The lines of the comment block the file starts with (blank lines included), trimmed. */
function leadingComments(sql: string): string[] {
  const lines: string[] = [];
  for (const raw of sql.split('\n')) {
    const line = raw.trim();
    if (line !== '' && !line.startsWith('--')) break;
    lines.push(line);
  }
  return lines;
}

const BOM = '\uFEFF';

/** Drops a leading byte-order mark and reads CRLF line ends as LF. */
function normaliseText(text: string): string {
  return (text.startsWith(BOM) ? text.slice(1) : text).replace(/\r\n/g, '\n');
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** What earlier versions recorded for this text checked out with CRLF and/or a BOM. */
function legacyChecksums(sql: string): string[] {
  const crlf = sql.replace(/\n/g, '\r\n');
  return [...new Set([crlf, BOM + sql, BOM + crlf])]
    .filter((variant) => variant !== sql)
    .map(sha256);
}

/** A migrations folder, or its files already loaded (to read a folder once for many schemas). */
export type MigrationSource = string | readonly MigrationFile[];

/** The files of `source`: read from the folder, or as given. */
export function readMigrationSource(source: MigrationSource): Promise<readonly MigrationFile[]> {
  return typeof source === 'string' ? loadMigrationFiles(source) : Promise.resolve(source);
}

/** Whether `recorded` (a history row's checksum) is this file's text. */
export function matchesChecksum(file: MigrationFile, recorded: string): boolean {
  return recorded === file.checksum || (file.legacyChecksums?.includes(recorded) ?? false);
}

/**
 * A loader of `dir`'s files that reads and checks them again only when the folder changed (a
 * name, size, inode or change time of a `.sql` file): frequent callers (every `create()`) then
 * pay a directory listing and a few `stat` calls instead of reading and hashing every file.
 */
export function migrationFilesLoader(dir: string): () => Promise<MigrationFile[]> {
  let cached: { signature: string; files: Promise<MigrationFile[]> } | undefined;
  return () => {
    let signature: string;
    try {
      const folder = resolve(dir);
      signature = readdirSync(folder)
        .filter((entry) => /\.sql$/i.test(entry))
        .sort()
        .map((entry) => {
          const stat = statSync(join(folder, entry), { bigint: true });
          return `${entry}:${stat.size}:${stat.ino}:${stat.mtimeNs}:${stat.ctimeNs}`;
        })
        .join('/');
    } catch {
      return loadMigrationFiles(dir); // reports what is wrong with the folder
    }
    if (cached?.signature !== signature) {
      const files = loadMigrationFiles(dir);
      cached = { signature, files };
      files.catch(() => {
        if (cached?.files === files) cached = undefined;
      });
    }
    return cached.files.then((files) => [...files]);
  };
}
