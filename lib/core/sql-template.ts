import { TemplateError } from '../errors.js';
import { assertIdentifier, quoteIdentifier } from './identifiers.js';

/**
 * A placeholder is `{{` + optional spaces + a name starting with a letter + `}}`. Content that
 * starts with anything else (`'{{1,2},{3,4}}'` array literals, JSON) is left alone.
 */
const PLACEHOLDER = /\{\{\s*([A-Za-z_][^{}]*?)\s*\}\}/g;
const LEFTOVER = /\{\{\s*(?:tables\b|schema\b)/;
const TABLE_PREFIX = 'tables.';

/** Default number of distinct SQL texts a template cache remembers. */
const DEFAULT_TEMPLATE_CACHE_SIZE = 2_000;

/**
 * A parsed SQL text, independent of any schema: the literal pieces, and between each two a slot
 * that is either `{{schema}}` (`null`) or a quoted table name.
 */
interface CompiledTemplate {
  readonly parts: readonly string[];
  readonly slots: readonly (string | null)[];
}

/**
 * Parsed SQL templates, shared by every manager of an application. Parsing (the regex pass and
 * name validation) happens once per distinct SQL text, whatever the number of schemas: with
 * 10,000 tenants, a query is parsed once, not once per tenant. Bounded: when full, the oldest
 * entry is evicted, so SQL built dynamically cannot grow it without limit.
 */
export class TemplateCache {
  readonly #compiled = new Map<string, CompiledTemplate>();
  readonly #max: number;

  constructor(maxSize = DEFAULT_TEMPLATE_CACHE_SIZE) {
    this.#max = maxSize;
  }

  /** Entries held. */
  get size(): number {
    return this.#compiled.size;
  }

  /** @throws TemplateError, InvalidIdentifierError */
  get(sql: string): CompiledTemplate {
    const hit = this.#compiled.get(sql);
    if (hit !== undefined) return hit;
    if (typeof sql !== 'string') {
      throw new TemplateError(`SQL must be a string, received ${typeof sql}.`);
    }
    const compiled = compile(sql);
    if (this.#compiled.size >= this.#max) {
      // Maps iterate in insertion order: the first key is the oldest entry.
      this.#compiled.delete(this.#compiled.keys().next().value as string);
    }
    this.#compiled.set(sql, compiled);
    return compiled;
  }
}

function compile(sql: string): CompiledTemplate {
  if (!sql.includes('{{')) return { parts: [sql], slots: [] };
  const parts: string[] = [];
  const slots: (string | null)[] = [];
  let last = 0;
  for (const match of sql.matchAll(PLACEHOLDER)) {
    parts.push(sql.slice(last, match.index));
    slots.push(slotOf(match[1]));
    last = match.index + match[0].length;
  }
  parts.push(sql.slice(last));
  for (const part of parts) {
    const leftover = LEFTOVER.exec(part);
    if (leftover) {
      const snippet = part.slice(leftover.index, leftover.index + 40);
      throw new TemplateError(
        `Malformed placeholder near ${JSON.stringify(snippet)}: write {{tables.name}} or {{schema}}, closed with "}}".`,
      );
    }
  }
  return { parts, slots };
}

function slotOf(name: string): string | null {
  if (name === 'schema') return null;
  if (name.startsWith(TABLE_PREFIX)) return quoteTable(name.slice(TABLE_PREFIX.length).trim());
  throw new TemplateError(
    `Unknown placeholder {{${name}}}: the supported placeholders are {{tables.name}} and {{schema}}.`,
  );
}

function quoteTable(table: string): string {
  assertIdentifier(table, 'table');
  return quoteIdentifier(table, 'table');
}

/**
 * Expands `{{tables.name}}` and `{{schema}}` placeholders for one schema (or for none: then
 * tables stay unqualified and `{{schema}}` is an error). A hot query costs a Map lookup in the
 * shared {@link TemplateCache} and a few string concatenations.
 */
export class SqlTemplate {
  readonly #schema: string | null;
  readonly #quotedSchema: string | null;
  /** `"schema".` — prepended to table names. */
  readonly #prefix: string;
  readonly #cache: TemplateCache;

  constructor(schema: string | null, cache: TemplateCache = new TemplateCache()) {
    if (schema !== null) assertIdentifier(schema, 'schema');
    this.#schema = schema;
    this.#quotedSchema = schema === null ? null : quoteIdentifier(schema, 'schema');
    this.#prefix = this.#quotedSchema === null ? '' : `${this.#quotedSchema}.`;
    this.#cache = cache;
  }

  /** The schema this template qualifies names with, or `null` for unqualified names. */
  get schema(): string | null {
    return this.#schema;
  }

  /** The cache this template parses through (shared with managers created from it). */
  get cache(): TemplateCache {
    return this.#cache;
  }

  /** The qualified, quoted name of `table`: `"schema"."table"`, or `"table"` without a schema. */
  table(table: string): string {
    return this.#prefix + quoteTable(table);
  }

  /** Expands every placeholder in `sql`. @throws TemplateError, InvalidIdentifierError */
  expand(sql: string): string {
    const { parts, slots } = this.#cache.get(sql);
    if (slots.length === 0) return sql;
    let out = parts[0];
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i]!;
      if (slot === null) {
        if (this.#quotedSchema === null) {
          throw new TemplateError(
            '{{schema}} was used on a manager that has no schema. Use a named schema manager (@InjectSchemaDb(name)) or write the schema explicitly.',
          );
        }
        out += this.#quotedSchema;
      } else {
        out += this.#prefix + slot;
      }
      out += parts[i + 1];
    }
    return out;
  }
}
