import { assertIdentifier, quoteIdentifier } from '../../../lib/shared/identifiers.js';
import { InvalidIdentifierError } from '../../../lib/shared/errors.js';

/** The error `fn` throws (fails the test when it throws nothing). */
function thrown(fn: () => unknown): InvalidIdentifierError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidIdentifierError);
    return err as InvalidIdentifierError;
  }
  throw new Error('expected an InvalidIdentifierError');
}

describe('identifiers', () => {
  describe('assertIdentifier', () => {
    it.each(['orders', '_x', 'Orders', 'a$1', 'a'.repeat(63)])('accepts %s', (name) => {
      expect(() => assertIdentifier(name, 'table')).not.toThrow();
    });

    it.each([
      ['an empty string', '', 'Invalid table name "": it must be a non-empty string.'],
      ['a non-string', 42, 'Invalid table name "42": it must be a non-empty string.'],
      [
        '64 bytes',
        'a'.repeat(64),
        `Invalid table name "${'a'.repeat(64)}": it is longer than 63 bytes and PostgreSQL would silently truncate it.`,
      ],
      [
        '2-byte characters past 63 bytes',
        'é'.repeat(32),
        `Invalid table name "${'é'.repeat(32)}": it is longer than 63 bytes and PostgreSQL would silently truncate it.`,
      ],
      [
        'a dash',
        'a-b',
        'Invalid table name "a-b": use letters, digits, "_" or "$", starting with a letter or "_".',
      ],
    ])('rejects %s, saying why', (_label, value, message) => {
      const error = thrown(() => assertIdentifier(value, 'table'));
      expect(error.message).toBe(message);
      expect(error).toMatchObject({ kind: 'table', value: String(value) });
    });
  });

  describe('quoteIdentifier', () => {
    it('quotes, doubling embedded quotes, and keeps reserved words, spaces and case', () => {
      expect(quoteIdentifier('order')).toBe('"order"');
      expect(quoteIdentifier('a"b"c')).toBe('"a""b""c"');
      expect(quoteIdentifier('My Table')).toBe('"My Table"');
      expect(quoteIdentifier('x'.repeat(63))).toBe(`"${'x'.repeat(63)}"`);
    });

    it.each([
      ['an empty string', '', /^Invalid identifier name "": it must be a non-empty string\.$/],
      ['a non-string', undefined, /^Invalid identifier name "undefined": it must be a non-empty/],
      ['a NUL byte', 'a\0b', /^Invalid identifier name "a\\u0000b": it contains a NUL byte\.$/],
      ['64 bytes', 'y'.repeat(64), /it is longer than 63 bytes/],
      ['2-byte characters past 63 bytes', 'é'.repeat(32), /it is longer than 63 bytes/],
    ])('rejects %s', (_label, value, message) => {
      expect(thrown(() => quoteIdentifier(value as string)).message).toMatch(message);
    });

    it('names what the identifier was for', () => {
      expect(thrown(() => quoteIdentifier('', 'column')).message).toMatch(/^Invalid column name/);
    });
  });
});
