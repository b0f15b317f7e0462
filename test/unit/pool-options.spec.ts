import { InvalidOptionsError, POOL_DEFAULTS } from '../../lib/index.js';
import { resolvePoolOptions, toPgPoolConfig } from '../../lib/pool/pool-options.js';
import { describeTarget } from '../../lib/pool/connection-errors.js';

describe('pool options', () => {
  it('fills every default from one place', () => {
    expect(resolvePoolOptions()).toEqual(POOL_DEFAULTS);
    expect(resolvePoolOptions({ max: 25 })).toEqual({ ...POOL_DEFAULTS, max: 25 });
    expect(Object.isFrozen(resolvePoolOptions())).toBe(true);
  });

  it.each([
    [{ max: 0 }, /pool.max must be at least 1/],
    [{ max: 2.5 }, /pool.max must be a non-negative integer/],
    [{ min: 5, max: 2 }, /cannot exceed pool.max/],
    [{ acquireTimeoutMs: 0 }, /unbounded wait/],
    [{ statementTimeoutMs: -1 }, /non-negative integer/],
    [{ applicationName: 'x'.repeat(64) }, /at most 63/],
    [{ maxConnections: 3 }, /Unknown pool option "maxConnections"/],
  ])('rejects %o', (options, message) => {
    expect(() => resolvePoolOptions(options as never)).toThrow(InvalidOptionsError);
    expect(() => resolvePoolOptions(options as never)).toThrow(message);
  });

  it('maps options onto pg settings, with server-side limits in the startup packet', () => {
    const config = toPgPoolConfig({
      connection: 'postgres://u:p@db:5433/app',
      pool: { max: 7, acquireTimeoutMs: 1500, statementTimeoutMs: 0, lockTimeoutMs: 200 },
      ssl: { rejectUnauthorized: true },
    });
    expect(config).toMatchObject({
      connectionString: 'postgres://u:p@db:5433/app',
      max: 7,
      connectionTimeoutMillis: 1500,
      idle_in_transaction_session_timeout: 60_000,
      lock_timeout: 200,
      application_name: 'nestjs-pg-tenancy',
      ssl: { rejectUnauthorized: true },
    });
    expect(config).not.toHaveProperty('statement_timeout');
  });

  it('falls back to DATABASE_URL, and pool options override a PoolConfig', () => {
    const saved = process.env.DATABASE_URL;
    process.env.DATABASE_URL = 'postgres://env@h/db';
    try {
      expect(toPgPoolConfig({}).connectionString).toBe('postgres://env@h/db');
      expect(toPgPoolConfig({ connection: { host: 'x', max: 99 } })).toMatchObject({
        host: 'x',
        max: 10,
      });
    } finally {
      process.env.DATABASE_URL = saved;
    }
  });

  it('describes a target without its password', () => {
    expect(
      describeTarget({ connectionString: 'postgres://app:s3cret@db.internal:6432/main' }),
    ).toBe('app@db.internal:6432/main');
    expect(describeTarget({ host: 'h', port: 1, user: 'u', password: 'pw', database: 'd' })).toBe(
      'u@h:1/d',
    );
  });
});
