import { InvalidOptionsError } from '../../../../lib/shared/errors.js';
import { resolveModuleOptions } from '../../../../lib/module/module-options.js';
import { parseLsn } from '../../../../lib/connection/replicas/replica-health.js';
import {
  REPLICA_DEFAULTS,
  resolveReplicaOptions,
} from '../../../../lib/connection/replicas/replica-options.js';

describe('replica options', () => {
  it('fills in the defaults', () => {
    expect(resolveReplicaOptions({ connections: ['postgres://r1/db'] })).toEqual({
      connections: ['postgres://r1/db'],
      max: undefined,
      ...REPLICA_DEFAULTS,
    });
  });

  it('reads numbers and booleans given as strings', () => {
    const resolved = resolveReplicaOptions({
      connections: [],
      maxLagMs: '250' as unknown as number,
      fallbackToPrimary: 'false' as unknown as boolean,
    });
    expect(resolved.maxLagMs).toBe(250);
    expect(resolved.fallbackToPrimary).toBe(false);
  });

  it.each([
    [{ connections: 'postgres://r1/db' }, /replicas.connections must be an array/],
    [{ connections: [], maxLag: 5 }, /Unknown replicas option "maxLag"/],
    [{ connections: [], readYourWrites: 'always' }, /'primary' or 'lsn'/],
    [
      { connections: [], checkIntervalMs: 0 },
      /replicas.checkIntervalMs must be an integer of at least 10/,
    ],
    [
      { connections: [], acquireTimeoutMs: 0 },
      /replicas.acquireTimeoutMs must be a positive integer/,
    ],
  ])('refuses %j', (options, message) => {
    expect(() => resolveReplicaOptions(options as never)).toThrow(InvalidOptionsError);
    expect(() => resolveReplicaOptions(options as never)).toThrow(message);
  });

  it('refuses a malformed replica URL at start-up without repeating it', () => {
    const run = () =>
      resolveModuleOptions({
        connection: 'postgres://primary/db',
        replicas: { connections: ['postgres://p/db', 'postgres://bob:s3cret-pw@db:notaport/app'] },
      });
    expect(run).toThrow(InvalidOptionsError);
    expect(run).toThrow(/^replicas.connections\[1\]: connection is not a valid postgres:\/\/ URL/);
    expect(run).not.toThrow(/s3cret/);
  });
});

describe('parseLsn', () => {
  it('orders WAL positions as PostgreSQL does', () => {
    expect(parseLsn('0/3000148')).toBe(0x3000148n);
    expect(parseLsn('16/B374D848')).toBe((0x16n << 32n) + 0xb374d848n);
    expect(parseLsn('1/0') > parseLsn('0/FFFFFFFF')).toBe(true);
  });
});
