import { InvalidOptionsError } from '../../../lib/shared/errors.js';
import {
  PREPARED_STATEMENT_DEFAULTS,
  resolvePreparedStatementOptions,
} from '../../../lib/connection/statement-cache-options.js';

describe('prepared statement options', () => {
  it("defaults to 'auto' with a bound of 1,000 statements per connection, outside transactions", () => {
    expect(resolvePreparedStatementOptions(undefined)).toEqual({
      enabled: 'auto',
      maxPerConnection: 1_000,
      prepareThreshold: 2,
      inTransactions: false,
    });
    expect(Object.isFrozen(PREPARED_STATEMENT_DEFAULTS)).toBe(true);
  });

  it('reads true, false and auto as { enabled }, and strings from the environment', () => {
    expect(resolvePreparedStatementOptions(false).enabled).toBe(false);
    expect(resolvePreparedStatementOptions(true).enabled).toBe(true);
    expect(resolvePreparedStatementOptions('auto').enabled).toBe('auto');
    expect(
      resolvePreparedStatementOptions({
        enabled: 'false' as never,
        maxPerConnection: '50' as never,
        inTransactions: 'true' as never,
      }),
    ).toEqual({ enabled: false, maxPerConnection: 50, prepareThreshold: 2, inTransactions: true });
  });

  it.each([
    [{ maxPerConnection: 0 }, /maxPerConnection must be a positive integer/],
    [{ enabled: 'yes' }, /preparedStatements.enabled must be true, false or 'auto'/],
    [{ prepareThreshold: 0 }, /prepareThreshold must be a positive integer/],
    [{ size: 3 }, /Unknown preparedStatements option "size"/],
    ['on', /preparedStatements.enabled must be true, false or 'auto'/],
  ])('rejects %o', (options, message) => {
    expect(() => resolvePreparedStatementOptions(options as never)).toThrow(InvalidOptionsError);
    expect(() => resolvePreparedStatementOptions(options as never)).toThrow(message);
  });
});
