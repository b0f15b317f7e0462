// Whether a migration file runs code whose effect can depend on the schema's name while it is
// applied. The template schema applies each file once, under its own name, and tenants get a
// copy: such a file must run per tenant instead.
import { scanSql, statementStarts, type SqlSegment } from '../core/sql/sql-lexer.js';

/** A statement of a file that runs code depending on the schema's name. */
export interface SchemaDependentStatement {
  /** 1-based line where the statement starts. */
  readonly line: number;
  /** What it does, e.g. `a DO block that uses {{schema}}`. */
  readonly reason: string;
}

// A placeholder the template expands (in code and in dollar-quoted bodies).
const PLACEHOLDER = /(?<!\\)\{\{\s*(?:schema|tables\.[^{}]*?)\s*\}\}/;
// A call of a function or procedure of the schema: `{{schema}}.name(` or `{{schema}}."name"(`.
const SCHEMA_ROUTINE_CALL =
  /(?<!\\)\{\{\s*schema\s*\}\}\s*\.\s*(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*|"(?:[^"]|"")+")\s*\(/;
/** Statements that run expressions over rows now, rather than define something for later. */
const RUNNING = new Set([
  'SELECT',
  'INSERT',
  'UPDATE',
  'DELETE',
  'MERGE',
  'WITH',
  'VALUES',
  'TABLE',
  'COPY',
  'EXECUTE',
  'EXPLAIN',
]);

/**
 * The first statement of `sql` (a migration file, before expansion) that runs code depending on
 * the schema's name while it is applied, by this rule:
 * - a `DO` block or a `CALL` that uses `{{schema}}` or `{{tables.x}}` anywhere (the code runs
 *   now, and can see the name);
 * - a statement that runs expressions now (`SELECT`, `INSERT`, `UPDATE`, `DELETE`, `MERGE`,
 *   `WITH`, `VALUES`, `TABLE`, `COPY`, `EXECUTE`, `EXPLAIN`, `ALTER TABLE` — a default or
 *   `USING` computed for existing rows — and `CREATE TABLE … AS`) that calls a function or
 *   procedure of the schema, `{{schema}}.name(…)`: that code was written by the migrations and
 *   may use the name.
 *
 * Reading or writing the schema's tables by name (`INSERT INTO {{tables.a}} SELECT … FROM
 * {{tables.b}}`) is not schema-dependent: their contents are equal in every schema the same
 * files built. Placeholders in string literals and comments are not expanded and do not count.
 * `undefined` when no statement matches.
 */
export function schemaDependentStatement(sql: string): SchemaDependentStatement | undefined {
  if (!sql.includes('{{')) return undefined;
  const segments = scanSql(sql);
  const starts = statementStarts(sql);
  for (let i = 0; i < starts.length; i++) {
    const { keyword, next, index } = starts[i];
    const end = starts[i + 1]?.index ?? sql.length;
    const reason = reasonFor(keyword, next, expandedText(sql, segments, index, end));
    if (reason !== undefined) {
      return { line: sql.slice(0, index).split('\n').length, reason };
    }
  }
  return undefined;
}

function reasonFor(keyword: string, next: string | undefined, text: string): string | undefined {
  if (keyword === 'DO' || keyword === 'CALL') {
    return PLACEHOLDER.test(text) ? `a ${keyword} that uses the schema's name` : undefined;
  }
  const running =
    RUNNING.has(keyword) ||
    (keyword === 'ALTER' && next === 'TABLE') ||
    (keyword === 'CREATE' &&
      /\bTABLE\b[\s\S]*\bAS\s+(?:SELECT|WITH|VALUES|TABLE|EXECUTE)\b/i.test(text));
  return running && SCHEMA_ROUTINE_CALL.test(text)
    ? `${keyword === 'CREATE' ? 'CREATE TABLE … AS' : keyword === 'ALTER' ? 'ALTER TABLE' : keyword} calling a function of the schema`
    : undefined;
}

/**
 * `sql` from `start` to `end` as the template sees it: code, quoted names and dollar-quoted
 * bodies kept, string literals and comments blanked (placeholders there are not expanded).
 */
function expandedText(
  sql: string,
  segments: readonly SqlSegment[],
  start: number,
  end: number,
): string {
  let out = '';
  for (const s of segments) {
    if (s.end <= start || s.start >= end) continue;
    const text = sql.slice(Math.max(s.start, start), Math.min(s.end, end));
    out += s.kind === 'string' || s.kind === 'comment' ? ' '.repeat(text.length) : text;
  }
  return out;
}
