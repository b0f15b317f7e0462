import { InvalidOptionsError } from '../../../lib/shared/errors.js';
import {
  POOL_DEFAULTS,
  resolvePoolOptions,
  toPgPoolConfig,
  toSessionConfig,
} from '../../../lib/connection/pool-options.js';
import { describeTarget } from '../../../lib/connection/connection-errors.js';

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

  it('ignores options set to undefined (e.g. from an unset environment variable)', () => {
    expect(resolvePoolOptions({ max: undefined, applicationName: undefined })).toEqual(
      POOL_DEFAULTS,
    );
  });

  it('lists the known options when it meets an unknown one', () => {
    expect(() => resolvePoolOptions({ size: 3 } as never)).toThrow(
      'Unknown pool option "size". Known options: max, min, idleTimeoutMs, acquireTimeoutMs, statementTimeoutMs, idleInTransactionTimeoutMs, lockTimeoutMs, applicationName, maxLifetimeSeconds, maxUses, affinity, backendMemory.',
    );
  });

  it('accepts every limit at its boundary', () => {
    expect(
      resolvePoolOptions({
        max: 1,
        min: 1,
        acquireTimeoutMs: 1,
        statementTimeoutMs: 0,
        applicationName: 'a'.repeat(63),
      }),
    ).toMatchObject({ max: 1, min: 1, acquireTimeoutMs: 1, applicationName: 'a'.repeat(63) });
    expect(resolvePoolOptions({ applicationName: 'billing-api' }).applicationName).toBe(
      'billing-api',
    );
  });

  it.each([
    [{ applicationName: 42 }, /applicationName must be a string of at most 63 characters/],
    [
      { idleTimeoutMs: '10s' },
      /pool.idleTimeoutMs must be a non-negative integer .*received the string "10s"/,
    ],
    [{ min: 3, max: 2 }, 'pool.min (3) cannot exceed pool.max (2).'],
  ])('rejects %o with a message that says what to do', (options, message) => {
    expect(() => resolvePoolOptions(options as never)).toThrow(message);
  });

  it('rejects a connection that is neither a URL nor a PoolConfig', () => {
    expect(() => toPgPoolConfig({ connection: 5432 as never })).toThrow(InvalidOptionsError);
    expect(() => toPgPoolConfig({ connection: 5432 as never })).toThrow(
      'connection must be a postgres:// URL or a pg.PoolConfig object.',
    );
  });

  it.each([
    ['a misspelt scheme', 'postgress://app:Sekr3t@db:5432/warehouse9', /not postgress:\/\//],
    ['no scheme at all', 'app:Sekr3t@db:5432/warehouse9', /has no such scheme/],
    ['a bare host and database', 'db.internal/warehouse9', /has no such scheme/],
    ['an http URL', 'http://db:5432/warehouse9', /not http:\/\//],
  ])('refuses %s with a typed error that never repeats the URL', (_label, url, reason) => {
    for (const settings of [{ connection: url }, { connection: { connectionString: url } }]) {
      const error = (() => {
        try {
          toPgPoolConfig(settings);
        } catch (err) {
          return err as Error;
        }
        throw new Error(`${url} was accepted`);
      })();
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect(error.message).toMatch(/must start with postgres:\/\/ or postgresql:\/\//);
      expect(error.message).toMatch(reason);
      expect(error.message).not.toContain('Sekr3t');
      expect(error.message).not.toContain('warehouse9');
    }
  });

  it.each([
    'postgres://db/app',
    'postgresql://u:p@db:5433/app',
    'POSTGRES://db/app',
    '/var/run/postgresql app',
    'socket:/var/run/postgresql?db=app',
  ])('accepts the forms pg connects with: %s', (url) => {
    expect(toPgPoolConfig({ connection: url }).connectionString).toBe(url);
  });

  it('sends the default server-side limits, and none that are disabled', () => {
    const config = toPgPoolConfig({ connection: 'postgres://db/app' });
    expect(config).toMatchObject({
      statement_timeout: 30_000,
      idle_in_transaction_session_timeout: 60_000,
    });
    expect(config).not.toHaveProperty('lock_timeout');
    expect(config).not.toHaveProperty('ssl');
    const none = toPgPoolConfig({
      connection: 'postgres://db/app',
      pool: { statementTimeoutMs: 0, idleInTransactionTimeoutMs: 0, lockTimeoutMs: 0 },
    });
    expect(none).not.toHaveProperty('statement_timeout');
    expect(none).not.toHaveProperty('idle_in_transaction_session_timeout');
    expect(none).not.toHaveProperty('lock_timeout');
  });

  it('uses directConnection for sessions of their own, with the pool settings', () => {
    const settings = {
      connection: 'postgres://pgbouncer:6432/app',
      directConnection: 'postgres://primary:5432/app',
      pool: { max: 3, statementTimeoutMs: 5_000 },
    };
    expect(toSessionConfig(settings)).toMatchObject({
      connectionString: 'postgres://primary:5432/app',
      max: 3,
      statement_timeout: 5_000,
    });
    expect(toSessionConfig({ ...settings, directConnection: undefined })).toMatchObject({
      connectionString: 'postgres://pgbouncer:6432/app',
      max: 3,
    });
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

  it('recycles connections after an hour by default, and after maxUses checkouts when set', () => {
    const defaults = toPgPoolConfig({ connection: 'postgres://db/app' });
    expect(defaults).toMatchObject({ maxLifetimeSeconds: 3_600 });
    expect(defaults).not.toHaveProperty('maxUses');
    expect(
      toPgPoolConfig({
        connection: 'postgres://db/app',
        pool: { maxUses: '20000' as never, maxLifetimeSeconds: 0 },
      }),
    ).toMatchObject({ maxUses: 20_000, maxLifetimeSeconds: 0 });
    expect(() => resolvePoolOptions({ maxUses: -1 })).toThrow(/pool.maxUses/);
  });

  it('falls back to DATABASE_URL, and pool options override a PoolConfig', () => {
    const saved = process.env.DATABASE_URL;
    process.env.DATABASE_URL = 'postgres://env@h/db';
    try {
      expect(toPgPoolConfig({}).connectionString).toBe('postgres://env@h/db');
      delete process.env.DATABASE_URL;
      // Nothing given: pg reads PGHOST, PGUSER and the rest itself.
      const config = toPgPoolConfig({});
      expect(config).not.toHaveProperty('connectionString');
      expect(config).toMatchObject({ max: 10, application_name: 'nestjs-pg-tenancy' });
      expect(toPgPoolConfig({ connection: { host: 'x', max: 99 } })).toMatchObject({
        host: 'x',
        max: 10,
      });
    } finally {
      if (saved === undefined) delete process.env.DATABASE_URL;
      else process.env.DATABASE_URL = saved;
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
