/**
 * What a stretch of SQL text is, by PostgreSQL's lexical rules:
 * - `code`: keywords, names, operators, numbers, `$1` parameters, whitespace;
 * - `string`: a single-quoted literal (`'…'`, `E'…'`, `U&'…'`, `B'…'`, `X'…'`), quotes included;
 * - `identifier`: a double-quoted identifier (`"…"`, `U&"…"`), quotes included;
 * - `comment`: `-- …` to the end of the line, or `/* … *\/` with nesting;
 * - `dollar-body`: the text between the tags of a dollar-quoted string (`$fn$ … $fn$`); the
 *   tags themselves belong to the surrounding `code`.
 */
export type SqlSegmentKind = 'code' | 'string' | 'identifier' | 'comment' | 'dollar-body';

/** One stretch of SQL text: `sql.slice(start, end)`. */
export interface SqlSegment {
  readonly kind: SqlSegmentKind;
  readonly start: number;
  readonly end: number;
  /** For a `dollar-body`: its tag, e.g. `$fn$` or `$$`. */
  readonly tag?: string;
}

// A dollar-quote tag: `$`, an optional name that does not start with a digit, `$`.
const DOLLAR_TAG = /\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/y;
const IDENT_START = /[A-Za-z_\u0080-\uffff]/;
const IDENT_CONT = /[A-Za-z0-9_$\u0080-\uffff]/;

/**
 * Splits `sql` into segments that cover it end to end, the way PostgreSQL's lexer reads it
 * (with `standard_conforming_strings` on, the default since 9.1: a backslash escapes only in
 * `E'…'`). An unterminated literal or comment runs to the end of the text, where the server
 * will report it.
 */
export function scanSql(sql: string): SqlSegment[] {
  const segments: SqlSegment[] = [];
  const n = sql.length;
  let codeStart = 0;
  let i = 0;
  const push = (kind: SqlSegmentKind, start: number, end: number, tag?: string) => {
    if (codeStart < start) segments.push({ kind: 'code', start: codeStart, end: start });
    segments.push(tag === undefined ? { kind, start, end } : { kind, start, end, tag });
    codeStart = end;
  };
  while (i < n) {
    const c = sql[i];
    if (c === "'") {
      const end = endOfQuoted(sql, i + 1, "'", isEscapeString(sql, i));
      push('string', i, end);
      i = end;
    } else if (c === '"') {
      const end = endOfQuoted(sql, i + 1, '"', false);
      push('identifier', i, end);
      i = end;
    } else if (c === '-' && sql[i + 1] === '-') {
      const newline = sql.indexOf('\n', i + 2);
      const end = newline === -1 ? n : newline;
      push('comment', i, end);
      i = end;
    } else if (c === '/' && sql[i + 1] === '*') {
      const end = endOfBlockComment(sql, i + 2);
      push('comment', i, end);
      i = end;
    } else if (c === '$') {
      DOLLAR_TAG.lastIndex = i;
      const tag = DOLLAR_TAG.exec(sql)?.[0];
      if (tag === undefined) {
        i++; // `$1` or a stray `$`
        continue;
      }
      const bodyStart = i + tag.length;
      const close = sql.indexOf(tag, bodyStart);
      const bodyEnd = close === -1 ? n : close;
      // The opening tag stays in the code before the body.
      if (codeStart < bodyStart) {
        segments.push({ kind: 'code', start: codeStart, end: bodyStart });
      }
      codeStart = bodyStart;
      push('dollar-body', bodyStart, bodyEnd, tag);
      i = close === -1 ? n : close + tag.length;
    } else if (IDENT_START.test(c)) {
      // A name runs on through `$`, so `a$b$` is one identifier, not a dollar quote.
      i++;
      while (i < n && IDENT_CONT.test(sql[i])) i++;
    } else if (c >= '0' && c <= '9') {
      i++;
      while (i < n && /[0-9A-Za-z_.]/.test(sql[i])) i++;
    } else {
      i++;
    }
  }
  if (codeStart < n) segments.push({ kind: 'code', start: codeStart, end: n });
  return segments;
}

/** `E'…'` (or `e'…'`): the `E` is a whole word right before the quote. */
function isEscapeString(sql: string, quote: number): boolean {
  const prefix = sql[quote - 1];
  if (prefix !== 'E' && prefix !== 'e') return false;
  const before = sql[quote - 2];
  return before === undefined || !IDENT_CONT.test(before);
}

/** Index just past the closing quote; a doubled quote (and, in `E''`, a backslash) escapes. */
function endOfQuoted(sql: string, from: number, quote: string, backslashes: boolean): number {
  for (let i = from; i < sql.length; i++) {
    const c = sql[i];
    if (backslashes && c === '\\') {
      i++;
    } else if (c === quote) {
      if (sql[i + 1] === quote) i++;
      else return i + 1;
    }
  }
  return sql.length;
}

/** Index just past the `*\/` that closes a block comment, counting nested `/*`. */
function endOfBlockComment(sql: string, from: number): number {
  let depth = 1;
  for (let i = from; i < sql.length - 1; i++) {
    if (sql[i] === '/' && sql[i + 1] === '*') {
      depth++;
      i++;
    } else if (sql[i] === '*' && sql[i + 1] === '/') {
      depth--;
      i++;
      if (depth === 0) return i + 1;
    }
  }
  return sql.length;
}

/**
 * `sql` with what is not SQL code blanked out (comments, literals, dollar-quoted bodies), same
 * length and offsets, so that patterns can be searched in code only. Quoted identifiers are kept,
 * with any `(`, `)` or `;` inside them blanked, so parentheses still pair and statements still end.
 */
export function codeOnly(sql: string): string {
  let out = '';
  for (const { kind, start, end } of scanSql(sql)) {
    const text = sql.slice(start, end);
    if (kind === 'code') out += text;
    else if (kind === 'identifier') out += text.replace(/[();]/g, '_');
    else out += ' '.repeat(text.length);
  }
  return out;
}

/** A top-level statement's first keyword, upper-cased, and where it starts. */
export interface StatementStart {
  readonly keyword: string;
  /** The word after it, upper-cased, when there is one (`TRANSACTION` in `START TRANSACTION`). */
  readonly next: string | undefined;
  readonly index: number;
}

const WORD = /[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*|;/g;

/**
 * The first two words of every top-level statement of `sql` that starts with a keyword.
 * Semicolons inside literals, comments, dollar-quoted bodies and SQL-standard
 * `BEGIN ATOMIC … END` bodies do not end a statement.
 */
export function statementStarts(sql: string): StatementStart[] {
  const starts: StatementStart[] = [];
  let words = 0; // words seen in the current statement; -1 once it started with a non-word
  let current: { keyword: string; next: string | undefined; index: number } | undefined;
  let previous = '';
  let atomicDepth = 0;
  for (const segment of scanSql(sql)) {
    if (segment.kind === 'comment') continue;
    if (segment.kind !== 'code') {
      if (words === 0) words = -1;
      else if (words === 1) words = 2;
      continue;
    }
    const text = sql.slice(segment.start, segment.end);
    let gapStart = 0;
    WORD.lastIndex = 0;
    for (let m = WORD.exec(text); m !== null; m = WORD.exec(text)) {
      const word = m[0].toUpperCase();
      if (word === ';') {
        gapStart = m.index + 1;
        if (atomicDepth > 0) continue;
        if (current) starts.push(current);
        current = undefined;
        words = 0;
        previous = '';
        continue;
      }
      // Anything but blanks before the first word (a parenthesis, a number) is not a keyword.
      if (words === 0 && /\S/.test(text.slice(gapStart, m.index))) words = -1;
      if (words === 0) {
        current = { keyword: word, next: undefined, index: segment.start + m.index };
        words = 1;
      } else if (words === 1) {
        if (current) current.next = word;
        words = 2;
      }
      if (previous === 'BEGIN' && word === 'ATOMIC') atomicDepth++;
      else if (atomicDepth > 0 && (word === 'CASE' || word === 'BEGIN')) atomicDepth++;
      else if (atomicDepth > 0 && word === 'END') atomicDepth--;
      previous = word;
    }
  }
  if (current) starts.push(current);
  return starts;
}
