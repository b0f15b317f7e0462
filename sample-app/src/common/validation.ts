import { BadRequestException, type PipeTransform } from '@nestjs/common';

/**
 * Reads one field of a request body: returns the value, or throws a `FieldError` saying what
 * is wrong with it. Small enough to read in one go; swap in class-validator or zod if you like.
 */
export type Field<T> = (value: unknown, name: string) => T;

/** What a body of `shape` parses to. */
export type Parsed<S> = { [K in keyof S]: S[K] extends Field<infer T> ? T : never };

class FieldError extends Error {}

/** The largest PostgreSQL `integer`. */
const MAX_INTEGER = 2_147_483_647;

/** A string, trimmed; empty only with `allowEmpty`. */
export function text(options: { max: number; allowEmpty?: boolean }): Field<string> {
  return (value, name) => {
    const trimmed = typeof value === 'string' ? value.trim() : undefined;
    if (
      trimmed === undefined ||
      (trimmed === '' && !options.allowEmpty) ||
      trimmed.length > options.max
    ) {
      throw new FieldError(
        `"${name}" must be a ${options.allowEmpty ? '' : 'non-empty '}string of at most ${options.max} characters.`,
      );
    }
    return trimmed;
  };
}

/** An e-mail address (a light check: something@something.tld). */
export const email: Field<string> = (value, name) => {
  if (
    typeof value !== 'string' ||
    value.length > 254 ||
    !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(value)
  ) {
    throw new FieldError(`"${name}" must be an e-mail address.`);
  }
  return value.toLowerCase();
};

export const boolean: Field<boolean> = (value, name) => {
  if (typeof value !== 'boolean') throw new FieldError(`"${name}" must be true or false.`);
  return value;
};

/** A positive `integer` id. */
export const id: Field<number> = (value, name) => {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_INTEGER) {
    throw new FieldError(`"${name}" must be a positive integer.`);
  }
  return value;
};

/** One of a fixed set of strings. */
export function oneOf<const T extends string>(...choices: T[]): Field<T> {
  return (value, name) => {
    if (!choices.includes(value as T)) {
      throw new FieldError(`"${name}" must be one of ${choices.map((c) => `"${c}"`).join(', ')}.`);
    }
    return value as T;
  };
}

/** The field may be left out. */
export function optional<T>(field: Field<T>): Field<T | undefined> {
  return (value, name) => (value === undefined ? undefined : field(value, name));
}

/** The field may be `null` (to clear it). */
export function nullable<T>(field: Field<T>): Field<T | null> {
  return (value, name) => (value === null ? null : field(value, name));
}

/**
 * A pipe that turns a JSON body into a typed object, or answers 400 with every problem in one
 * message. Unknown fields are refused, so a typo (`titel`) is not silently ignored. With
 * `atLeastOne`, an empty object is refused too (for PATCH).
 *
 * @example @Body(new ValidBody({ name: text({ max: 200 }) })) input: { name: string }
 */
export class ValidBody<S extends Record<string, Field<unknown>>> implements PipeTransform<
  unknown,
  Parsed<S>
> {
  constructor(
    private readonly shape: S,
    private readonly options: { atLeastOne?: boolean } = {},
  ) {}

  transform(body: unknown): Parsed<S> {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new BadRequestException(
        'The body must be a JSON object (send "content-type: application/json").',
      );
    }
    const allowed = Object.keys(this.shape);
    const input = body as Record<string, unknown>;
    const problems: string[] = [];
    // Field names from the request are not repeated back: only the allowed ones are named.
    if (Object.keys(input).some((key) => !allowed.includes(key))) {
      problems.push(`Unexpected field; the allowed fields are ${allowed.join(', ')}.`);
    }
    if (this.options.atLeastOne && !allowed.some((key) => input[key] !== undefined)) {
      problems.push(`Send at least one of ${allowed.join(', ')}.`);
    }
    const parsed: Record<string, unknown> = {};
    for (const [name, field] of Object.entries(this.shape)) {
      try {
        parsed[name] = field(input[name], name);
      } catch (err) {
        if (!(err instanceof FieldError)) throw err;
        problems.push(err.message);
      }
    }
    if (problems.length > 0) throw new BadRequestException(problems.join(' '));
    return parsed as Parsed<S>;
  }
}

/**
 * A path parameter that must be a tenant table's id: a positive `bigint` that a JSON number
 * holds exactly (at most 2^53 - 1; see `toProject` in projects.service.ts).
 */
export class ParseIdPipe implements PipeTransform<string, number> {
  transform(value: string): number {
    const parsed = /^[1-9]\d{0,15}$/.test(value) ? Number(value) : NaN;
    if (!(parsed <= Number.MAX_SAFE_INTEGER)) {
      throw new BadRequestException('The id in the path must be a positive integer.');
    }
    return parsed;
  }
}
