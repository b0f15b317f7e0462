// The history table every migrated schema holds: its name and DDL, and what it says about a
// schema against its migrations folder.
import type pg from 'pg';
import { qualifiedName } from '../shared/identifiers.js';
import { matchesChecksum, type MigrationFile } from './migration-files.js';
import type { MigrationStatus } from './migration-types.js';

/** Name of the history table created in every migrated schema. */
export const MIGRATIONS_TABLE = 'schema_migrations';

/** `"schema"."schema_migrations"`. */
export function historyTable(schema: string): string {
  return qualifiedName(schema, MIGRATIONS_TABLE);
}

/** Creates `schema`'s history table when it has none. */
export function historyDdl(schema: string): string {
  return `CREATE TABLE IF NOT EXISTS ${historyTable(schema)} (
     version integer PRIMARY KEY,
     name text NOT NULL,
     checksum text NOT NULL,
     applied_at timestamptz NOT NULL DEFAULT now(),
     duration_ms integer NOT NULL
   )`;
}

/** Records `file` as applied to `schema`, in `durationMs`. */
export async function recordApplied(
  client: pg.ClientBase,
  schema: string,
  file: MigrationFile,
  durationMs: number,
): Promise<void> {
  await client.query(
    `INSERT INTO ${historyTable(schema)} (version, name, checksum, duration_ms) VALUES ($1, $2, $3, $4)`,
    [file.version, file.name, file.checksum, durationMs],
  );
}

/** The checksum `schema`'s history records for `file`'s number, or `undefined` when none. */
export async function recordedChecksum(
  client: pg.ClientBase,
  schema: string,
  file: MigrationFile,
): Promise<string | undefined> {
  const { rows } = await client.query<{ checksum: string }>(
    `SELECT checksum FROM ${historyTable(schema)} WHERE version = $1`,
    [file.version],
  );
  return rows[0]?.checksum;
}

/** Applied, pending, changed and missing migrations of `schema` against `files`. Reads only. */
export async function readMigrationStatus(
  client: pg.ClientBase,
  schema: string,
  files: readonly MigrationFile[],
): Promise<MigrationStatus> {
  const exists = await client.query<{ found: string | null }>(
    'SELECT to_regclass($1)::text AS found',
    [historyTable(schema)],
  );
  const rows =
    exists.rows[0]?.found == null
      ? []
      : (
          await client.query<{
            version: number;
            name: string;
            checksum: string;
            applied_at: Date;
            duration_ms: number;
          }>(
            `SELECT version, name, checksum, applied_at, duration_ms FROM ${historyTable(schema)} ORDER BY version`,
          )
        ).rows;
  const applied = rows.map((r) => ({
    version: r.version,
    name: r.name,
    checksum: r.checksum,
    appliedAt: r.applied_at,
    durationMs: r.duration_ms,
  }));
  const byVersion = new Map(applied.map((a) => [a.version, a]));
  const fileVersions = new Set(files.map((f) => f.version));
  return {
    schema,
    applied,
    pending: files.filter((f) => !byVersion.has(f.version)),
    changed: files
      .filter((f) => {
        const row = byVersion.get(f.version);
        return row !== undefined && !matchesChecksum(f, row.checksum);
      })
      .map((f) => f.name),
    missing: applied.filter((a) => !fileVersions.has(a.version)).map((a) => a.name),
  };
}
