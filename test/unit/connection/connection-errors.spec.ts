import pg from 'pg';
import {
  DatabaseConnectionError,
  PoolAcquireTimeoutError,
  PoolClosedError,
  TemplateError,
} from '../../../lib/shared/errors.js';
import {
  describeTarget,
  isBrokenConnectionError,
  toAcquireError,
} from '../../../lib/connection/connection-errors.js';

/** An error as the server sends it. */
function serverError(code: string, severity = 'ERROR', message = 'server said no') {
  return Object.assign(new pg.DatabaseError(message, 0, 'error'), { code, severity });
}

/** A Node.js error with a `code`, as sockets raise them. */
function nodeError(code: string, message: string) {
  return Object.assign(new Error(message), { code });
}

describe('connection errors', () => {
  describe('isBrokenConnectionError: may the connection go back to the pool?', () => {
    it.each([
      ['a FATAL server error', true, serverError('XX000', 'FATAL')],
      ['a PANIC server error', true, serverError('XX000', 'PANIC')],
      ['a connection exception (08006)', true, serverError('08006')],
      ['terminated by an administrator (57P01)', true, serverError('57P01')],
      ['a unique violation', false, serverError('23505')],
      ['a statement timeout (57014)', false, serverError('57014')],
      ['a code with 08 inside it (22008)', false, serverError('22008')],
      ['a code with 57P inside it (XX57P)', false, serverError('XX57P')],
      ['a socket reset', true, nodeError('ECONNRESET', 'read ECONNRESET')],
      ['a broken pipe', true, nodeError('EPIPE', 'write EPIPE')],
      ['an aborted operation', false, nodeError('ABORT_ERR', 'The operation was aborted')],
      ['a bad argument', false, nodeError('ERR_INVALID_ARG_TYPE', 'The "x" argument is wrong')],
      ['a lost connection', true, new Error('Connection terminated unexpectedly')],
      [
        'a failed client',
        true,
        new Error('Client has encountered a connection error and is not queryable'),
      ],
      ['a query read timeout', true, new Error('Query read timeout')],
      ['an error of this module', false, new TemplateError('Connection terminated in a message')],
      ['a value that is not an Error', false, 'Connection terminated'],
      ['an unrelated error', false, new TypeError('x is not a function')],
    ])('%s: broken %s', (_label, broken, error) => {
      expect(isBrokenConnectionError(error)).toBe(broken);
    });
  });

  describe('toAcquireError', () => {
    const config = { host: 'db', port: 6432, user: 'app', password: 's3cret', database: 'main' };

    it('turns a checkout timeout into PoolAcquireTimeoutError with the pool limits', () => {
      const cause = new Error('timeout exceeded when trying to connect');
      const error = toAcquireError(cause, { ...config, connectionTimeoutMillis: 250, max: 4 });
      expect(error).toBeInstanceOf(PoolAcquireTimeoutError);
      expect(error).toMatchObject({ timeoutMs: 250, max: 4, cause });
    });

    it('turns a checkout from an ended pool into PoolClosedError', () => {
      expect(
        toAcquireError(new Error('Cannot use a pool after calling end on the pool'), config),
      ).toBeInstanceOf(PoolClosedError);
    });

    it('repeats a refusal by the server, naming the target without the password', () => {
      const cause = serverError('28P01', 'FATAL', 'password authentication failed for user "app"');
      const error = toAcquireError(cause, config);
      expect(error).toBeInstanceOf(DatabaseConnectionError);
      expect(error.message).toBe(
        'PostgreSQL at app@db:6432/main refused the connection: password authentication failed for user "app"',
      );
      expect(error.cause).toBe(cause);
      expect(error.message).not.toContain('s3cret');
    });

    it.each([
      [
        'a server still starting (57P03)',
        serverError('57P03', 'FATAL', 'the database system is starting up'),
      ],
      ['a server error below FATAL', serverError('08P01', 'ERROR', 'invalid startup packet')],
      ['a refused socket', nodeError('ECONNREFUSED', 'connect ECONNREFUSED 10.0.0.1:6432')],
      ['something that is not an Error', 'boom'],
    ])('reports %s as a failure to connect, with what to check', (_label, cause) => {
      const error = toAcquireError(cause, config);
      expect(error).toBeInstanceOf(DatabaseConnectionError);
      expect(error.message).toMatch(
        /^Could not connect to PostgreSQL at app@db:6432\/main: .+\. Check that the server is running and the connection settings are right\.$/,
      );
      expect(error.cause).toBe(cause);
    });
  });

  describe('describeTarget', () => {
    const names = ['PGHOST', 'PGPORT', 'PGDATABASE', 'PGUSER'] as const;
    const saved: Record<string, string | undefined> = {};
    beforeEach(() => {
      for (const name of names) {
        saved[name] = process.env[name];
        delete process.env[name];
      }
    });
    afterEach(() => {
      for (const name of names) {
        if (saved[name] === undefined) delete process.env[name];
        else process.env[name] = saved[name];
      }
    });

    it("fills what is missing with libpq's defaults", () => {
      expect(describeTarget({})).toBe('localhost:5432/');
      expect(describeTarget({ user: 'app' })).toBe('app@localhost:5432/app');
      expect(describeTarget({ connectionString: 'postgres://db.internal/main' })).toBe(
        'db.internal:5432/main',
      );
    });

    it('fills what is missing from the PG* environment variables', () => {
      Object.assign(process.env, { PGHOST: 'envhost', PGPORT: '6543', PGUSER: 'envuser' });
      expect(describeTarget({})).toBe('envuser@envhost:6543/envuser');
      process.env.PGDATABASE = 'envdb';
      expect(describeTarget({ user: 'app' })).toBe('app@envhost:6543/envdb');
    });

    it('decodes URL-encoded parts and never shows the password', () => {
      expect(describeTarget({ connectionString: 'postgres://us%40er:p%40ss@h:1/my%20db' })).toBe(
        'us@er@h:1/my db',
      );
    });

    it('does not echo a connection string it cannot parse', () => {
      expect(describeTarget({ connectionString: 'postgres://u:secret@[bad' })).toBe(
        '<unparseable connection string>',
      );
    });
  });
});
