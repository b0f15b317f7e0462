import { InvalidOptionsError } from './errors.js';

/**
 * A value as an error message should name it, type included: `the string "20"` rather than a
 * bare `20`, so a value that came from an environment variable is recognisable as one.
 */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return 'an array';
  if (value instanceof RegExp) return `the RegExp ${String(value)}`;
  return `a${typeof value === 'object' ? 'n' : ''} ${typeof value}`;
}

const DECIMAL_INTEGER = /^\s*-?\d+\s*$/;

/**
 * An integer option of at least `min`. A string of decimal digits (what environment variables
 * and `ConfigService.get()` give) is read as its number; anything else is refused with a
 * message that says what was received.
 *
 * @throws InvalidOptionsError
 */
export function integerOption(value: unknown, name: string, min = 0): number {
  const number = typeof value === 'string' && DECIMAL_INTEGER.test(value) ? Number(value) : value;
  if (typeof number !== 'number' || !Number.isInteger(number) || number < min) {
    const kind =
      min === 0
        ? 'a non-negative integer'
        : min === 1
          ? 'a positive integer'
          : `an integer of at least ${min}`;
    throw new InvalidOptionsError(
      `${name} must be ${kind} (a number, or a string of digits), received ${describeValue(value)}.`,
    );
  }
  return number;
}

/**
 * A boolean option. The strings `"true"` and `"false"` (from environment variables) are read
 * as booleans, so `"false"` cannot switch something on by being a non-empty string.
 *
 * @throws InvalidOptionsError
 */
export function booleanOption(value: unknown, name: string): boolean {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string' && /^\s*(true|false)\s*$/i.test(value)) {
    return value.trim().toLowerCase() === 'true';
  }
  throw new InvalidOptionsError(`${name} must be true or false, received ${describeValue(value)}.`);
}
