import { TemplateError } from '../errors.js';
import { assertIdentifier, quoteIdentifier } from './identifiers.js';

/**
 * A placeholder is `{{` + optional spaces + a name starting with a letter + `}}`. Content that
 * starts with anything else (`'{{1,2},{3,4}}'` array literals, JSON) is left alone.
 */
const PLACEHOLDER = /\{\{\s*([A-Za-z_][^{}]*?)\s*\}\}/g;
const LEFTOVER = /\{\{\s*(?:tables\b|schema\b)/;
const TABLE_PREFIX = 'tables.';

/** Default number of distinct SQL texts whose expansion a manager remembers. */
export const DEFAULT_TEMPLATE_CACHE_SIZE = 2_000;

/**
 * Expands `{{tables.name}}` and `{{schema}}` placeholders for one schema (or for none: then
 * tables stay unqualified and `{{schema}}` is an error).
 *
 * Expansion is memoised per SQL text, so a hot query costs one Map lookup. The cache is
 * bounded: when full, the oldest entry is evicted, so SQL built dynamically cannot grow it
 * without limit.
 */
export class SqlTemplate {
  readonly #schema: string | null;
  readonly #quotedSchema: string | null;
  readonly #cache = new Map<string, string>();
  readonly #maxCacheSize: number;

  constructor(schema: string | null, maxCacheSize = DEFAULT_TEMPLATE_CACHE_SIZE) {
    if (schema !== null) assertIdentifier(schema, 'schema');
    this.#schema = schema;
    this.#quotedSchema = schema === null ? null : quoteIdentifier(schema, 'schema');
    this.#maxCacheSize = maxCacheSize;
  }

  /** The schema this template qualifies names with, or `null` for unqualified names. */
  get schema(): string | null {
    return this.#schema;
  }

  /** The qualified, quoted name of `table`: `"schema"."table"`, or `"table"` without a schema. */
  table(table: string): string {
    assertIdentifier(table, 'table');
    const quoted = quoteIdentifier(table, 'table');
    return this.#quotedSchema === null ? quoted : `${this.#quotedSchema}.${quoted}`;
  }

  /** Expands every placeholder in `sql`. @throws TemplateError, InvalidIdentifierError */
  expand(sql: string): string {
    const cached = this.#cache.get(sql);
    if (cached !== undefined) return cached;
    if (typeof sql !== 'string') {
      throw new TemplateError(`SQL must be a string, received ${typeof sql}.`);
    }
    const expanded = sql.includes('{{') ? this.#expandUncached(sql) : sql;
    if (this.#cache.size >= this.#maxCacheSize) {
      // Maps iterate in insertion order: the first key is the oldest entry.
      this.#cache.delete(this.#cache.keys().next().value as string);
    }
    this.#cache.set(sql, expanded);
    return expanded;
  }

  #expandUncached(sql: string): string {
    const out = sql.replace(PLACEHOLDER, (_match, name: string) => this.#resolve(name));
    const leftover = LEFTOVER.exec(out);
    if (leftover) {
      const snippet = out.slice(leftover.index, leftover.index + 40);
      throw new TemplateError(
        `Malformed placeholder near ${JSON.stringify(snippet)}: write {{tables.name}} or {{schema}}, closed with "}}".`,
      );
    }
    return out;
  }

  #resolve(name: string): string {
    if (name === 'schema') {
      if (this.#quotedSchema === null) {
        throw new TemplateError(
          '{{schema}} was used on a manager that has no schema. Use a named schema manager (@InjectSchemaDb(name)) or write the schema explicitly.',
        );
      }
      return this.#quotedSchema;
    }
    if (name.startsWith(TABLE_PREFIX)) {
      return this.table(name.slice(TABLE_PREFIX.length).trim());
    }
    throw new TemplateError(
      `Unknown placeholder {{${name}}}: the supported placeholders are {{tables.name}} and {{schema}}.`,
    );
  }
}
