import { SqlTemplateError } from '../../shared/errors.js';
import { assertIdentifier, quoteIdentifier } from '../../shared/identifiers.js';
import { withTenantInConflictTargets } from './conflict-target.js';
import { scanSql } from './sql-lexer.js';

/**
 * A placeholder is `{{` + optional spaces + a name starting with a letter + `}}`. Content that
 * starts with anything else (`{{1,2}}` array literals, JSON) is left alone. `\{{` is a literal
 * `{{` in code (the backslash is dropped).
 */
const PLACEHOLDER = /\\\{\{|\{\{\s*([A-Za-z_][^{}]*?)\s*\}\}/g;
const LEFTOVER = /\{\{\s*(?:tables\b|schema\b)/;
const TABLE_PREFIX = 'tables.';
// Inside a dollar-quoted body, an expanded name must not contain anything that could close it.
const DOLLAR_TAG_LIKE = /\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/;

/** Default number of distinct SQL texts an SQL template cache remembers. */
const DEFAULT_CACHE_SIZE = 2_000;
/**
 * Default bound of the expansions kept, in characters of SQL (each counted with
 * {@link EXPANSION_OVERHEAD} more): about 4 MiB of one-byte text.
 */
const DEFAULT_EXPANSION_BUDGET = 4_000_000;
/** What an expansion costs besides its characters (Map entry, string header), in characters. */
const EXPANSION_OVERHEAD = 64;
/** Longer expansions (migration files, generated SQL) are rebuilt each time, never kept. */
const MAX_KEPT_EXPANSION = 16_384;

/**
 * A parsed SQL text, independent of any schema: the literal pieces, and between each two a slot
 * that is either `{{schema}}` (`null`) or a quoted table name.
 */
interface CompiledTemplate {
  readonly parts: readonly string[];
  readonly slots: readonly (string | null)[];
  /** Per slot, `true` when it lies inside a dollar-quoted body (`$fn$ … $fn$`). */
  readonly inDollarBody: readonly boolean[];
  /**
   * Expansions already built, by schema (`null`: unqualified), oldest first. A hot query then
   * gets the same string object every time: each Map it is a key of downstream (the statement
   * cache per connection) hashes it once, not once per call, as it must a freshly built string.
   */
  readonly expanded: Map<string | null, string>;
}

/**
 * Parsed SQL templates, shared by every manager of an application. Parsing (the regex pass and
 * name validation) happens once per distinct SQL text, whatever the number of schemas: with
 * 10,000 tenants, a query is parsed once, not once per tenant. Bounded: when full, the oldest
 * entry is evicted, so SQL built dynamically cannot grow it without limit. Each entry also keeps
 * its expansions per schema, within a budget of characters shared by all entries.
 */
export class SqlTemplateCache {
  readonly #compiled = new Map<string, CompiledTemplate>();
  readonly #max: number;
  readonly #expansionBudget: number;
  /** Characters (plus overhead) of every expansion kept, across all entries. */
  #expansionCost = 0;

  constructor(maxSize = DEFAULT_CACHE_SIZE, expansionBudget = DEFAULT_EXPANSION_BUDGET) {
    this.#max = maxSize;
    this.#expansionBudget = expansionBudget;
  }

  /** Entries held. */
  get size(): number {
    return this.#compiled.size;
  }

  /** Expansions kept, across all entries. */
  get expansions(): number {
    let n = 0;
    for (const compiled of this.#compiled.values()) n += compiled.expanded.size;
    return n;
  }

  /** @throws SqlTemplateError, InvalidIdentifierError */
  get(sql: string): CompiledTemplate {
    const hit = this.#compiled.get(sql);
    if (hit !== undefined) return hit;
    if (typeof sql !== 'string') {
      throw new SqlTemplateError(`SQL must be a string, received ${typeof sql}.`);
    }
    const compiled = compile(sql);
    if (this.#compiled.size >= this.#max) {
      // Maps iterate in insertion order: the first key is the oldest entry.
      const oldest = this.#compiled.keys().next().value as string;
      this.#forget(this.#compiled.get(oldest)!);
      this.#compiled.delete(oldest);
    }
    this.#compiled.set(sql, compiled);
    return compiled;
  }

  /**
   * Keeps `text` as the expansion of `compiled` (just returned by {@link get}) for `schema`,
   * within the budget: the entry's own oldest expansions go first, and everything when that is
   * not enough. No bookkeeping on a hit, so a hit costs one Map lookup.
   */
  keep(compiled: CompiledTemplate, schema: string | null, text: string): void {
    if (text.length > MAX_KEPT_EXPANSION) return;
    const cost = text.length + EXPANSION_OVERHEAD;
    const { expanded } = compiled;
    while (this.#expansionCost + cost > this.#expansionBudget && expanded.size > 0) {
      const oldest = expanded.keys().next().value as string | null;
      this.#expansionCost -= expanded.get(oldest)!.length + EXPANSION_OVERHEAD;
      expanded.delete(oldest);
    }
    if (this.#expansionCost + cost > this.#expansionBudget) {
      for (const other of this.#compiled.values()) this.#forget(other);
    }
    expanded.set(schema, text);
    this.#expansionCost += cost;
  }

  #forget(compiled: CompiledTemplate): void {
    for (const text of compiled.expanded.values()) {
      this.#expansionCost -= text.length + EXPANSION_OVERHEAD;
    }
    compiled.expanded.clear();
  }
}

/**
 * Finds placeholders the way PostgreSQL reads SQL: in code and in dollar-quoted bodies (function
 * bodies are code too), never in string literals, quoted identifiers or comments, which are kept
 * exactly as written.
 */
function compile(sql: string): CompiledTemplate {
  if (!sql.includes('{{'))
    return { parts: [sql], slots: [], inDollarBody: [], expanded: new Map() };
  const parts: string[] = [];
  const slots: (string | null)[] = [];
  const inDollarBody: boolean[] = [];
  let part = '';
  for (const segment of scanSql(sql)) {
    const text = sql.slice(segment.start, segment.end);
    if ((segment.kind !== 'code' && segment.kind !== 'dollar-body') || !text.includes('{{')) {
      part += text;
      continue;
    }
    let last = 0;
    for (const match of text.matchAll(PLACEHOLDER)) {
      const before = text.slice(last, match.index);
      assertNoLeftover(before);
      part += before;
      last = match.index + match[0].length;
      if (match[1] === undefined) {
        part += '{{'; // the escape \{{
        continue;
      }
      parts.push(part);
      part = '';
      slots.push(slotOf(match[1]));
      inDollarBody.push(segment.kind === 'dollar-body');
    }
    const rest = text.slice(last);
    assertNoLeftover(rest);
    part += rest;
  }
  parts.push(part);
  return { parts, slots, inDollarBody, expanded: new Map() };
}

function assertNoLeftover(text: string): void {
  const leftover = LEFTOVER.exec(text);
  if (leftover) {
    const snippet = text.slice(leftover.index, leftover.index + 40);
    throw new SqlTemplateError(
      `Malformed placeholder near ${JSON.stringify(snippet)}: write {{tables.name}} or {{schema}}, closed with "}}" (or \\{{ for a literal "{{").`,
    );
  }
}

function slotOf(name: string): string | null {
  if (name === 'schema') return null;
  if (name.startsWith(TABLE_PREFIX)) return quoteTable(name.slice(TABLE_PREFIX.length).trim());
  throw new SqlTemplateError(
    `Unknown placeholder {{${name}}}: the supported placeholders are {{tables.name}} and {{schema}}.`,
  );
}

function quoteTable(table: string): string {
  assertIdentifier(table, 'table');
  return quoteIdentifier(table, 'table');
}

/**
 * Expands `{{tables.name}}` and `{{schema}}` placeholders for one schema (or for none: then
 * tables stay unqualified and `{{schema}}` is an error). A hot query costs two Map lookups in
 * the shared {@link SqlTemplateCache}, and gets the string it got last time.
 */
export class SqlTemplate {
  readonly #schema: string | null;
  readonly #quotedSchema: string | null;
  /** `"schema".` — prepended to table names. */
  readonly #prefix: string;
  readonly #cache: SqlTemplateCache;
  /** The schema contains `$`, so it needs care inside dollar-quoted bodies. */
  readonly #dollar: boolean;
  /** The pooled tier's tenant column, added to conflict targets; `undefined` elsewhere. */
  readonly #tenantColumn: string | undefined;
  /** What the expansions are kept under in the shared cache: the schema, or schema and column. */
  readonly #key: string | null;

  /**
   * `tenantColumn`: the schema's tables are the pooled tier's, whose keys lead with that column;
   * an `INSERT`'s `ON CONFLICT (…)` into them gets it first (see `withTenantInConflictTargets`).
   */
  constructor(
    schema: string | null,
    cache: SqlTemplateCache = new SqlTemplateCache(),
    tenantColumn?: string,
  ) {
    if (schema !== null) assertIdentifier(schema, 'schema');
    this.#schema = schema;
    this.#dollar = schema !== null && DOLLAR_TAG_LIKE.test(schema);
    this.#quotedSchema = schema === null ? null : quoteIdentifier(schema, 'schema');
    this.#prefix = this.#quotedSchema === null ? '' : `${this.#quotedSchema}.`;
    this.#cache = cache;
    this.#tenantColumn = schema === null ? undefined : tenantColumn;
    // A NUL cannot be in an identifier: no schema's own key looks like this one.
    this.#key = this.#tenantColumn === undefined ? schema : `${schema}\u0000${this.#tenantColumn}`;
  }

  /** The schema this template qualifies names with, or `null` for unqualified names. */
  get schema(): string | null {
    return this.#schema;
  }

  /** The cache this template parses through (shared with managers created from it). */
  get cache(): SqlTemplateCache {
    return this.#cache;
  }

  /** The qualified, quoted name of `table`: `"schema"."table"`, or `"table"` without a schema. */
  table(table: string): string {
    return this.#prefix + quoteTable(table);
  }

  /**
   * `sql`, a statement built with this template's qualified names (not a template), as a pooled
   * template's expansion would have it: its pooled tables' conflict targets lead with the tenant
   * column. Any other template returns it as it is.
   */
  withTenantKeys(sql: string): string {
    return this.#tenantColumn === undefined
      ? sql
      : withTenantInConflictTargets(sql, this.#prefix, this.#tenantColumn);
  }

  /** Expands every placeholder in `sql`. @throws SqlTemplateError, InvalidIdentifierError */
  expand(sql: string): string {
    const compiled = this.#cache.get(sql);
    const { parts, slots } = compiled;
    if (slots.length === 0) return parts[0];
    const kept = compiled.expanded.get(this.#key);
    if (kept !== undefined) return kept;
    if (this.#dollar && compiled.inDollarBody.includes(true)) this.#refuseDollar();
    let out = parts[0];
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i]!;
      if (slot === null) {
        if (this.#quotedSchema === null) {
          throw new SqlTemplateError(
            '{{schema}} was used on a manager that has no schema. Use a named schema manager (@InjectSchemaDb(name)) or write the schema explicitly.',
          );
        }
        out += this.#quotedSchema;
      } else {
        out += this.#prefix + slot;
      }
      out += parts[i + 1];
    }
    if (this.#tenantColumn !== undefined) {
      out = withTenantInConflictTargets(out, this.#prefix, this.#tenantColumn);
    }
    this.#cache.keep(compiled, this.#key, out);
    return out;
  }

  #refuseDollar(): never {
    throw new SqlTemplateError(
      `Schema ${JSON.stringify(this.#schema)} contains a dollar-quote tag ("$…$"), so expanding it inside a dollar-quoted body ($fn$ … $fn$) could end that body early. ` +
        'Use schema names (tenant ids and schemaPrefix) without "$".',
    );
  }
}
