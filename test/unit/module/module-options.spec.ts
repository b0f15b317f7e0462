import { InvalidOptionsError } from '../../../lib/index.js';
import { resolveModuleOptions } from '../../../lib/module/module-options.js';
import { toPgPoolConfig } from '../../../lib/connection/pool-options.js';

describe('module options', () => {
  it('reads numbers and booleans given as strings (ConfigService, environment variables)', () => {
    const options = resolveModuleOptions({
      connection: 'postgres://u:p@db:5432/app',
      pool: { max: '20', acquireTimeoutMs: ' 1500 ' },
      slowQueryMs: '0',
      migrateOnStartup: 'false',
      shutdown: { drainTimeoutMs: '2000' },
      metrics: { maxTenantLabels: '50', tenantLabel: 'true' },
    } as never);
    expect(options.pool).toMatchObject({ max: 20, acquireTimeoutMs: 1500 });
    expect(options).toMatchObject({
      slowQueryMs: 0,
      migrateOnStartup: false,
      shutdown: { drainTimeoutMs: 2000 },
      metrics: { maxTenantLabels: 50, tenantLabel: true },
    });
    expect(toPgPoolConfig(options)).toMatchObject({ max: 20, connectionTimeoutMillis: 1500 });
  });

  it.each([
    [{ pool: { max: 'twenty' } }, /pool.max must be .* received the string "twenty"/],
    [{ pool: { max: '2.5' } }, /pool.max must be .* received the string "2\.5"/],
    [{ slowQueryLimit: '' }, /slowQueryLimit must be .* received the string ""/],
    [
      { migrateOnStartup: 'no' },
      /migrateOnStartup must be true or false, received the string "no"/,
    ],
    [{ missingMigrations: 'ignore' }, /missingMigrations must be 'warn' or 'fail'/],
  ])('refuses %o, saying what it received', (options, message) => {
    expect(() => resolveModuleOptions(options as never)).toThrow(InvalidOptionsError);
    expect(() => resolveModuleOptions(options as never)).toThrow(message);
  });

  it.each([['schemas'], ['tenancy'], ['isGlobal']])(
    'says that %s goes beside the forRootAsync factory, not in what it returns',
    (key) => {
      const value = key === 'isGlobal' ? false : {};
      expect(() => resolveModuleOptions({ [key]: value })).toThrow(
        new RegExp(`"${key}" came from the forRootAsync factory.*Pass it beside the factory`),
      );
    },
  );

  it('refuses a malformed connection URL with a typed error that hides the password', () => {
    for (const connection of [
      'postgres://bob:s3cret-pw@db:notaport/app',
      'postgres://bob:s3cret-pw@[::1/app',
    ]) {
      let error: unknown;
      try {
        resolveModuleOptions({ connection });
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect((error as Error).message).toMatch(/connection is not a valid postgres:\/\/ URL/);
      expect(JSON.stringify(error)).not.toContain('s3cret');
      expect((error as Error).message).not.toContain('s3cret');
      expect((error as Error).stack).not.toContain('s3cret');
    }
    expect(() =>
      resolveModuleOptions({ directConnection: { connectionString: 'postgres://u:s3cret@h:x/d' } }),
    ).toThrow(/connection.connectionString is not a valid/);
  });
});
