// What the equivalence harness compares between two tenant schemas built from the same files:
// the catalog, the rows, the sequences' state, and what calling their code does. Every
// description names the schema as `<schema>`, so two tenants' descriptions are equal exactly
// when they are alike.
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import { exactFingerprint } from '../../lib/catalog/fingerprints.js';
import { sequencePositions } from '../../lib/catalog/schema-tables.js';
import { qualifiedName, quoteIdentifier } from '../../lib/shared/identifiers.js';

/** Replaces each of `schemas` (quoted or bare) in `text` with `<schema>`. */
function normalise(text: string, schemas: readonly string[]): string {
  let out = text;
  for (const schema of schemas) {
    const escaped = schema.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    out = out
      .replaceAll(quoteIdentifier(schema), '<schema>')
      .replace(new RegExp(`(?<![A-Za-z0-9_$])${escaped}(?![A-Za-z0-9_$])`, 'g'), '<schema>');
  }
  return out;
}

/**
 * The catalog of `schema`: the library's exact fingerprint (every definition, privileges,
 * comments, owners; its row checksums left to {@link dataChecksums}, which normalises the
 * schema's name inside rows) and what it does not spell out: each function's `proconfig`,
 * policies in full, enum labels, domains, partition keys and bounds, type and default privileges.
 */
export async function catalog(client: pg.ClientBase, schema: string): Promise<string[]> {
  const lines = (await exactFingerprint(client, schema)).filter((l) => !l.startsWith('rows '));
  const { rows } = await client.query<{ line: string }>(
    `WITH ns AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1)
     SELECT 'proconfig ' || p.oid::regprocedure::text || ' ' || coalesce(p.proconfig::text, '-')
            || ' secdef=' || p.prosecdef || ' volatile=' || p.provolatile::text AS line
       FROM pg_catalog.pg_proc p, ns WHERE p.pronamespace = ns.oid
     UNION ALL SELECT 'policy ' || c.relname || '.' || p.polname || ' cmd=' || p.polcmd::text
            || ' permissive=' || p.polpermissive
            || ' roles=' || (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(r)::text END, ',' ORDER BY r) FROM unnest(p.polroles) r)
            || ' using=' || coalesce(pg_catalog.pg_get_expr(p.polqual, p.polrelid), '-')
            || ' check=' || coalesce(pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), '-')
       FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c ON c.oid = p.polrelid, ns
      WHERE c.relnamespace = ns.oid
     UNION ALL SELECT 'type ' || t.typname || ' ' || t.typtype::text
            || ' labels=' || coalesce((SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                                         FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid), '-')
            || ' base=' || pg_catalog.format_type(t.typbasetype, t.typtypmod) || ' notnull=' || t.typnotnull
            || ' default=' || coalesce(t.typdefault, '-') || ' acl=' || coalesce(t.typacl::text, '-')
       FROM pg_catalog.pg_type t, ns WHERE t.typnamespace = ns.oid AND t.typtype IN ('e', 'd')
     UNION ALL SELECT 'default privileges ' || d.defaclobjtype::text || ' for '
            || pg_catalog.pg_get_userbyid(d.defaclrole) || ' ' || coalesce(d.defaclacl::text, '-')
       FROM pg_catalog.pg_default_acl d, ns WHERE d.defaclnamespace = ns.oid
     UNION ALL SELECT 'partitioned ' || c.relname || ' ' || pg_catalog.pg_get_partkeydef(c.oid)
       FROM pg_catalog.pg_class c, ns WHERE c.relnamespace = ns.oid AND c.relkind = 'p'
     UNION ALL SELECT 'partition ' || c.relname || ' of ' || i.inhparent::regclass::text || ' '
            || coalesce(pg_catalog.pg_get_expr(c.relpartbound, c.oid), '-')
       FROM pg_catalog.pg_class c JOIN pg_catalog.pg_inherits i ON i.inhrelid = c.oid, ns
      WHERE c.relnamespace = ns.oid`,
    [schema],
  );
  return lines.concat(rows.map((r) => normalise(r.line, [schema]))).sort();
}

/**
 * Per table (partitions included, the migration history left out): its row count and a hash of
 * its rows as text, with `schemas` normalised inside them (a row may hold the schema's name).
 */
export async function dataChecksums(
  client: pg.ClientBase,
  schema: string,
  schemas: readonly string[] = [schema],
): Promise<string[]> {
  const { rows: tables } = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_catalog.pg_class c
      WHERE c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1)
        AND c.relkind = 'r' AND c.relname <> 'schema_migrations' ORDER BY c.relname`,
    [schema],
  );
  const out: string[] = [];
  for (const { name } of tables) {
    const { rows } = await client.query<{ row: string }>(
      `SELECT x::text AS row FROM ${qualifiedName(schema, name)} x`,
    );
    const text = rows
      .map((r) => normalise(r.row, schemas))
      .sort()
      .join('\n');
    out.push(`${name} ${rows.length} ${createHash('sha256').update(text).digest('hex')}`);
  }
  return out;
}

/** Every sequence's `last_value` and `is_called`. */
export async function sequenceState(client: pg.ClientBase, schema: string): Promise<string[]> {
  return (await sequencePositions(client, schema)).map(
    (s) => `${s.name} last_value=${s.lastValue} is_called=${s.isCalled}`,
  );
}

/** What calling a schema's code did: each statement's result, and every table it wrote. */
export interface Behaviour {
  /** Per statement: its rows as JSON, or its error's SQLSTATE and message. */
  readonly results: string[];
  /** `schema.table ins/upd/del` for every table written, in any schema. */
  readonly writes: string[];
}

/**
 * Runs `statements` (one per line, `{{schema}}` standing for the schema) in `schema` in one
 * transaction, each under a savepoint so that one failing does not hide the others, and reads
 * from `pg_stat_xact_user_tables` every table the transaction wrote: in which schema each write
 * landed. Commits, so later comparisons see the writes.
 */
export async function behaviour(
  client: pg.ClientBase,
  schema: string,
  statements: readonly string[],
  /** Other schema names its rows may hold (rows copied from them); results only. */
  sources: readonly string[] = [],
): Promise<Behaviour> {
  const results: string[] = [];
  await client.query('BEGIN');
  try {
    for (const statement of statements) {
      const sql = statement.replaceAll('{{schema}}', quoteIdentifier(schema));
      await client.query('SAVEPOINT step');
      try {
        const { rows } = await client.query(sql);
        results.push(normalise(JSON.stringify(rows), [schema, ...sources]));
        await client.query('RELEASE SAVEPOINT step');
      } catch (err) {
        const { code, message } = err as { code?: string; message: string };
        results.push(`error ${code}: ${normalise(message, [schema])}`);
        await client.query('ROLLBACK TO SAVEPOINT step');
      }
    }
    const { rows } = await client.query<{ line: string }>(
      `SELECT schemaname || '.' || relname || ' ' || n_tup_ins || '/' || n_tup_upd || '/' || n_tup_del AS line
         FROM pg_catalog.pg_stat_xact_user_tables
        WHERE n_tup_ins + n_tup_upd + n_tup_del > 0 ORDER BY 1`,
    );
    await client.query('COMMIT');
    return { results, writes: rows.map((r) => normalise(r.line, [schema])) };
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  }
}

/** A file set of the corpus: its migration files and its behaviour statements. */
export interface FileSet {
  readonly files: Record<string, string>;
  readonly statements: string[];
}

/**
 * Reads the corpus folders `names` under `root` into one file set: every `NNN_*.sql` file, in
 * the order of their numbers across the folders and renumbered 1, 2, 3… (the runner wants
 * versions without gaps), and the lines of each folder's `behaviour.sql` (one statement each).
 */
export async function readFileSet(root: string, names: readonly string[]): Promise<FileSet> {
  const found: [string, string][] = [];
  const statements: string[] = [];
  for (const name of names) {
    for (const file of (await readdir(join(root, name))).sort()) {
      const text = await readFile(join(root, name, file), 'utf8');
      if (file === 'behaviour.sql') {
        statements.push(...text.split('\n').filter((line) => line.trim() !== ''));
      } else {
        found.push([file, text]);
      }
    }
  }
  found.sort(([a], [b]) => a.localeCompare(b));
  const files = Object.fromEntries(
    found.map(([file, text], i) => [
      `${String(i + 1).padStart(3, '0')}_${file.replace(/^\d+_/, '')}`,
      text,
    ]),
  );
  return { files, statements };
}
