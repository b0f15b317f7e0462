// A schema's migration history as a copy carries it: read, and checked against the files.
import type pg from 'pg';
import { historyTable } from '../migrations/migration-history.js';
import { matchesChecksum, type MigrationFile } from '../migrations/migration-files.js';

/** A row of a schema's migration history. */
export interface MigrationHistoryEntry {
  /** The file's number. */
  readonly version: number;
  /** The file name, e.g. `003_add_index.sql`. */
  readonly name: string;
  /** SHA-256 (hex) of the file's text when it was applied. */
  readonly checksum: string;
}

/** The schema's migration history, oldest first. */
export async function readHistory(
  client: pg.ClientBase,
  schema: string,
): Promise<MigrationHistoryEntry[]> {
  const { rows } = await client.query<MigrationHistoryEntry>(
    `SELECT version, name, checksum FROM ${historyTable(schema)} ORDER BY version`,
  );
  return rows;
}

/**
 * Why `history` is not a prefix of `files` (an applied file edited, deleted or renumbered; or a
 * history newer than the files), or `undefined` when it is.
 */
export function historyMismatch(
  history: readonly MigrationHistoryEntry[],
  files: readonly MigrationFile[],
): string | undefined {
  if (history.length > files.length) {
    return `it records ${history.length} migration(s) and the migrations folder has ${files.length}: it is newer than this application's migrations`;
  }
  for (let i = 0; i < history.length; i++) {
    const file = files[i];
    const entry = history[i];
    if (entry.version !== file.version || !matchesChecksum(file, entry.checksum)) {
      return `migration ${entry.name} differs from ${file.name} in the migrations folder (checksum or number)`;
    }
  }
  return undefined;
}
