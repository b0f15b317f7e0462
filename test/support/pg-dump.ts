// `pg_dump --schema-only` of one schema, for comparing two schemas the way PostgreSQL's own tool
// sees them. Debian installs pg_dump per major version under /usr/lib/postgresql/<major>/bin, and
// pg_dump refuses a newer server: the dump runs only when the server's major version is
// installed there (in CI: Debian's PostgreSQL 15, see compat/postgres15.sh).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import type pg from 'pg';

const run = promisify(execFile);

/**
 * Set (to `1`) where the comparison must run: a missing or mismatched pg_dump then fails the
 * test instead of skipping it. compat/postgres15.sh sets it.
 */
export const PG_DUMP_REQUIRED = process.env.PG_DUMP_REQUIRED === '1';

/**
 * The pg_dump binary of the server's major version, or `undefined` (with a loud warning naming
 * why) when it is not installed and {@link PG_DUMP_REQUIRED} is not set.
 *
 * @throws Error when it is not installed and PG_DUMP_REQUIRED=1.
 */
export async function pgDumpFor(client: pg.ClientBase | pg.Pool): Promise<string | undefined> {
  const { rows } = await client.query<{ v: string }>(
    "SELECT current_setting('server_version_num') AS v",
  );
  const major = Math.floor(Number(rows[0].v) / 10_000);
  const binary = `/usr/lib/postgresql/${major}/bin/pg_dump`;
  if (existsSync(binary)) return binary;
  const why = `${binary} (pg_dump of this PostgreSQL ${major} server) is not installed`;
  if (PG_DUMP_REQUIRED) throw new Error(`PG_DUMP_REQUIRED=1 but ${why}`);
  console.warn(`SKIPPED the pg_dump comparison: ${why}. The catalog comparison still ran.`);
  return undefined;
}

/**
 * `pg_dump --schema-only --no-owner` of `schema` in the database at `url`, without the lines
 * that differ between any two runs (the `\restrict` key, the version banner), and with the
 * schema's name written `<schema>`.
 */
export async function dumpSchema(binary: string, url: string, schema: string): Promise<string> {
  const { stdout } = await run(binary, [
    '--schema-only',
    '--no-owner',
    `--schema=${schema}`,
    `--dbname=${url}`,
  ]);
  return stdout
    .split('\n')
    .filter((line) => !/^\\(un)?restrict /.test(line) && !line.startsWith('-- Dumped'))
    .join('\n')
    .replaceAll(schema, '<schema>');
}
