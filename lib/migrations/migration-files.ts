import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { MigrationFilesError } from './migration.errors.js';

/** One migration file, read and checksummed. */
export interface MigrationFile {
  /** The numeric prefix: `3` for `003_add_index.sql`. */
  readonly version: number;
  /** The file name, e.g. `003_add_index.sql`. */
  readonly name: string;
  /** The file's text, before template expansion. */
  readonly sql: string;
  /** SHA-256 of the text, hex. */
  readonly checksum: string;
  /** `false` when the first line is `-- migrate:no-transaction`. */
  readonly transactional: boolean;
}

const FILE_NAME = /^(\d+)_([A-Za-z0-9_-]+)\.sql$/;
/** First-line marker for statements that cannot run in a transaction (CREATE INDEX CONCURRENTLY). */
const NO_TRANSACTION_MARKER = /^--\s*migrate:no-transaction\s*$/;

/**
 * Reads `NNN_description.sql` files from `dir`, ordered by number. Versions must run 1, 2, 3…
 * without duplicates or gaps, so a mis-numbered file (two developers both adding `004_…`) fails
 * loudly instead of applying in a surprising order.
 *
 * @throws MigrationFilesError naming the offending files.
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
  const sqlFiles = entries.filter((entry) => entry.endsWith('.sql')).sort();
  const badNames = sqlFiles.filter((file) => !FILE_NAME.test(file));
  if (badNames.length > 0) {
    throw new MigrationFilesError(
      `Migration files must be named NNN_description.sql (digits, underscore, letters/digits/-/_): ${badNames.join(', ')} in ${folder}.`,
    );
  }
  const files = await Promise.all(
    sqlFiles.map(async (name): Promise<MigrationFile> => {
      const sql = await readFile(join(folder, name), 'utf8');
      const firstLine = sql.split('\n', 1)[0].trim();
      return {
        version: Number(FILE_NAME.exec(name)![1]),
        name: basename(name),
        sql,
        checksum: createHash('sha256').update(sql).digest('hex'),
        transactional: !NO_TRANSACTION_MARKER.test(firstLine),
      };
    }),
  );
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
