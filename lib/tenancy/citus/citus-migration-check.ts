import type pg from 'pg';
import { codeOnly, statementStarts } from '../../core/sql/sql-lexer.js';
import type { MigrationFile } from '../../migrations/migration-files.js';
import { CitusMigrationError } from './citus.errors.js';

/**
 * What a tenant migration file does that Citus refuses on a distributed schema, found by reading
 * its text (no SQL parser: statement starts and `REFERENCES` targets only).
 */
export interface CitusMigrationFindings {
  /**
   * DDL that Citus forwards to the worker as written, in a file with other statements: the
   * worker runs it as one prepared statement, which cannot hold several commands. Found:
   * `CREATE [UNIQUE] INDEX`, `DROP INDEX`, and `ALTER TABLE` with a `DROP`, `RENAME`, `ALTER` or
   * `ADD CONSTRAINT` subcommand (Citus rewrites `ADD [COLUMN]` and unnamed `ADD FOREIGN KEY`,
   * `UNIQUE`, `CHECK`, `PRIMARY KEY` itself, so those may share a file). The first one's kind,
   * e.g. `CREATE INDEX` or `ALTER TABLE … DROP`.
   */
  readonly multiStatementDdl: string | undefined;
  /**
   * Schema-qualified `REFERENCES` targets other than the tenant's own tables (`{{tables.x}}`,
   * `{{schema}}.x`), as written: `accounts.users`, `"Billing"."plans"`. Whether Citus refuses
   * one depends on what it is (a reference table is allowed), which only the catalog knows.
   */
  readonly externalReferences: readonly string[];
}

const NAME = String.raw`(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*|\{\{[^}]*\}\})`;
const REFERENCES_TARGET = new RegExp(
  String.raw`\bREFERENCES\s+(${NAME}(?:\s*\.\s*${NAME})?)`,
  'gi',
);
const ALTER_TABLE_HEAD = new RegExp(
  String.raw`^ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?${NAME}(?:\s*\.\s*${NAME})?\s*\*?`,
  'i',
);
const FORWARDED_SUBCOMMAND = /^\s*(DROP|RENAME|ALTER|ADD\s+CONSTRAINT)\b/i;

/** The first `ALTER TABLE` subcommand Citus forwards as written (`DROP`, …), or `undefined`. */
function forwardedAlterTable(statement: string): string | undefined {
  const head = ALTER_TABLE_HEAD.exec(statement);
  if (!head) return undefined;
  // Subcommands are separated by commas outside parentheses.
  let depth = 0;
  let from = head[0].length;
  for (let i = from; i <= statement.length; i++) {
    const c = statement[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if ((c === ',' && depth === 0) || i === statement.length) {
      const action = FORWARDED_SUBCOMMAND.exec(statement.slice(from, i));
      if (action) return action[1].toUpperCase().replace(/\s+/, ' ');
      from = i + 1;
    }
  }
  return undefined;
}

/** Findings per file object: the files loader hands out the same objects until the folder changes. */
const findingsOf = new WeakMap<Pick<MigrationFile, 'sql'>, CitusMigrationFindings>();

/**
 * Reads `file` for what Citus refuses on a distributed schema (see
 * {@link CitusMigrationFindings}); each file object is read once.
 */
export function findCitusConflicts(file: Pick<MigrationFile, 'sql'>): CitusMigrationFindings {
  let found = findingsOf.get(file);
  if (!found) findingsOf.set(file, (found = readCitusConflicts(file.sql)));
  return found;
}

/** Whether `file` raises anything at all (then the catalog may have to be asked). */
export function hasCitusConflicts(file: Pick<MigrationFile, 'sql'>): boolean {
  const found = findCitusConflicts(file);
  return found.multiStatementDdl !== undefined || found.externalReferences.length > 0;
}

function readCitusConflicts(sql: string): CitusMigrationFindings {
  const code = codeOnly(sql);
  const starts = statementStarts(sql);
  let multiStatementDdl: string | undefined;
  if (starts.length > 1) {
    for (const [i, start] of starts.entries()) {
      const statement = `${start.keyword} ${start.next ?? ''}`;
      const text = code.slice(start.index, starts[i + 1]?.index ?? code.length);
      if (statement === 'CREATE INDEX' || statement === 'DROP INDEX') multiStatementDdl = statement;
      else if (statement === 'CREATE UNIQUE') multiStatementDdl = 'CREATE UNIQUE INDEX';
      else if (statement === 'ALTER TABLE') {
        const action = forwardedAlterTable(text.replace(/;\s*$/, ''));
        if (action) multiStatementDdl = `ALTER TABLE … ${action}`;
      }
      if (multiStatementDdl !== undefined) break;
    }
  }
  const externalReferences: string[] = [];
  for (const match of code.matchAll(REFERENCES_TARGET)) {
    const target = match[1].replace(/\s+/g, '');
    if (target.startsWith('{{')) continue; // {{tables.x}} or {{schema}}.x: the tenant's own
    if (!/^(?:"(?:[^"]|"")+"|[^."]+)\./.test(target)) continue; // unqualified: search_path decides
    if (!externalReferences.includes(target)) externalReferences.push(target);
  }
  return { multiStatementDdl, externalReferences };
}

/**
 * Refuses, before a distributed tenant is created, tenant migration files that Citus would refuse
 * part-way: index and most ALTER TABLE DDL sharing a file with other statements, and foreign keys to a table outside
 * the tenant's schema that is not a Citus reference table (the registry, a named schema's local
 * table, another tenant). One catalog query, only when a file names a table outside the schema.
 *
 * @throws CitusMigrationError naming the file, what Citus refuses and what to write instead.
 */
export async function assertCitusCompatible(
  client: pg.Pool | pg.ClientBase,
  files: readonly MigrationFile[],
): Promise<void> {
  const external: { file: string; target: string }[] = [];
  for (const file of files) {
    const found = findCitusConflicts(file);
    if (found.multiStatementDdl !== undefined) {
      throw new CitusMigrationError(
        file.name,
        `Tenant migration ${file.name} runs ${found.multiStatementDdl} beside other statements, which Citus refuses on a distributed schema's tables ("cannot insert multiple commands into a prepared statement"). Give each such statement (CREATE INDEX, DROP INDEX, ALTER TABLE … DROP, RENAME, ALTER or ADD CONSTRAINT) a migration file of its own, or set tenancy.citus to false to keep tenants on the coordinator.`,
      );
    }
    for (const target of found.externalReferences) external.push({ file: file.name, target });
  }
  if (external.length === 0) return;
  const { rows } = await client.query<{ target: string }>(
    `SELECT t.target
       FROM unnest($1::text[]) AS t(target)
      WHERE to_regclass(t.target) IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p
                         WHERE p.logicalrelid = to_regclass(t.target) AND p.repmodel = 't')`,
    [external.map((e) => e.target)],
  );
  const refused = external.find((e) => rows.some((r) => r.target === e.target));
  if (refused) {
    throw new CitusMigrationError(
      refused.file,
      `Tenant migration ${refused.file} has a foreign key to ${refused.target}, a table outside the tenant's schema that is not a Citus reference table; Citus refuses it on a distributed schema. Keep the id as a plain column and check it in the application, or make that table a reference table (SELECT create_reference_table('${refused.target}')), or set tenancy.citus to false to keep tenants on the coordinator.`,
    );
  }
}
