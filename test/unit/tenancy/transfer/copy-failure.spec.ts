import { copyFailure } from '../../../../lib/tenancy/transfer/copy-statements.js';

describe('copyFailure', () => {
  it('says what to do when PostgreSQL refuses an enum value added in the copying transaction', () => {
    const err = Object.assign(new Error('unsafe use of new value "great" of enum type t.mood'), {
      code: '55P04',
    });
    expect(copyFailure(err)).toMatch(
      /^unsafe use of new value "great" of enum type t\.mood: a row uses an enum value .* ALTER TYPE … ADD VALUE.*PostgreSQL 17 or later/,
    );
  });

  it('keeps any other error as PostgreSQL said it', () => {
    const err = Object.assign(new Error('duplicate key value'), { code: '23505' });
    expect(copyFailure(err)).toBe('duplicate key value');
  });
});
