import { quoteIdentifier } from '../../shared/identifiers.js';
import { codeOnly } from './sql-lexer.js';

const ON_CONFLICT = /\bON\s+CONFLICT\s*\(/gi;
const INSERT_INTO = /\bINSERT\s+INTO\s+/gi;

/**
 * For a pooled tenant's statements: the conflict target of an `INSERT` into one of the pooled
 * tables (`insertPrefix`, their schema's quoted name and a dot) gets the tenant column first.
 *
 * The pooled tables' primary keys and unique constraints are per tenant, `(tenant_id, email)`
 * where the migration file says `(email)`, so `ON CONFLICT (email)` names no constraint there
 * (SQLSTATE `42P10`). With the column added, the same text infers the per-tenant constraint, as
 * it infers `(email)` in a tenant's own schema. Left alone: an `INSERT` into any other table, a
 * target that already names the column, `ON CONFLICT ON CONSTRAINT` and a target-less
 * `ON CONFLICT DO …`. Strings, comments and dollar-quoted bodies are never read as SQL.
 */
export function withTenantInConflictTargets(
  sql: string,
  insertPrefix: string,
  column: string,
): string {
  if (!/conflict/i.test(sql)) return sql;
  const code = codeOnly(sql);
  const quoted = quoteIdentifier(column, 'column');
  const named = new RegExp(`(?:^|[\\s,(])(?:${quoted}|${column})(?=[\\s,)]|$)`, 'i');
  const inserts = [...code.matchAll(INSERT_INTO)].map((m) => ({
    at: m.index,
    pooled: code.startsWith(insertPrefix, m.index + m[0].length),
  }));
  let out = '';
  let copied = 0;
  for (const match of code.matchAll(ON_CONFLICT)) {
    const open = match.index + match[0].length; // just after "("
    const insert = inserts.findLast((i) => i.at < match.index);
    if (!insert?.pooled || code.lastIndexOf(';', match.index) > insert.at) continue;
    const close = closingParen(code, open);
    if (named.test(sql.slice(open, close))) continue;
    out += `${sql.slice(copied, open)}${quoted}, `;
    copied = open;
  }
  return copied === 0 ? sql : out + sql.slice(copied);
}

/** The index of the `)` that closes the parenthesis opened just before `from` (or the end). */
function closingParen(code: string, from: number): number {
  let depth = 1;
  for (let i = from; i < code.length; i++) {
    if (code[i] === '(') depth++;
    else if (code[i] === ')' && --depth === 0) return i;
  }
  return code.length;
}
