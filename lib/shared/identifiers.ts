import { InvalidIdentifierError } from './errors.js';

/** PostgreSQL truncates identifiers longer than NAMEDATALEN - 1 bytes; we refuse them instead. */
export const MAX_IDENTIFIER_BYTES = 63;

const SIMPLE_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$]*$/;

/**
 * Checks that `value` is a name this module will put into SQL: 1–63 bytes, a letter or `_`
 * first, then letters, digits, `_` or `$`. Mixed case is kept (names are always quoted), so
 * `Orders` and `orders` are different tables, exactly as in quoted SQL.
 *
 * @throws InvalidIdentifierError naming `kind` and the reason.
 */
export function assertIdentifier(value: unknown, kind: string): asserts value is string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new InvalidIdentifierError(kind, String(value), 'it must be a non-empty string');
  }
  if (Buffer.byteLength(value, 'utf8') > MAX_IDENTIFIER_BYTES) {
    throw new InvalidIdentifierError(
      kind,
      value,
      `it is longer than ${MAX_IDENTIFIER_BYTES} bytes and PostgreSQL would silently truncate it`,
    );
  }
  if (!SIMPLE_IDENTIFIER.test(value)) {
    throw new InvalidIdentifierError(
      kind,
      value,
      'use letters, digits, "_" or "$", starting with a letter or "_"',
    );
  }
}

/**
 * Quotes any identifier for SQL: wraps it in double quotes and doubles embedded quotes, so
 * reserved words (`"order"`), spaces and quotes are all safe. Rejects empty names, NUL bytes and
 * names over 63 bytes, which PostgreSQL cannot represent faithfully.
 *
 * @example quoteIdentifier('order') // '"order"'
 * @example quoteIdentifier('a"b')   // '"a""b"'
 */
export function quoteIdentifier(value: string, kind = 'identifier'): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new InvalidIdentifierError(kind, String(value), 'it must be a non-empty string');
  }
  if (value.includes('\0')) {
    throw new InvalidIdentifierError(kind, value, 'it contains a NUL byte');
  }
  if (Buffer.byteLength(value, 'utf8') > MAX_IDENTIFIER_BYTES) {
    throw new InvalidIdentifierError(
      kind,
      value,
      `it is longer than ${MAX_IDENTIFIER_BYTES} bytes and PostgreSQL would silently truncate it`,
    );
  }
  return `"${value.replace(/"/g, '""')}"`;
}

/** The quoted, schema-qualified name of `name` in `schema`: `"schema"."name"`. */
export function qualifiedName(schema: string, name: string): string {
  return `${quoteIdentifier(schema)}.${quoteIdentifier(name)}`;
}
