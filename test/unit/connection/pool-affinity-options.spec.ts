import { InvalidOptionsError } from '../../../lib/shared/errors.js';
import {
  POOL_DEFAULTS,
  resolvePoolOptions,
  schemaBound,
} from '../../../lib/connection/pool-options.js';

describe('pool.affinity and pool.backendMemory options', () => {
  it('default to one preferred connection a schema and a 64 MiB budget (6,348 schemas)', () => {
    const resolved = resolvePoolOptions();
    expect(resolved.affinity).toEqual({ preferredConnections: 1 });
    expect(resolved.backendMemory).toEqual({ budgetMiB: 64, perSchemaKiB: 10 });
    expect(schemaBound(resolved.backendMemory)).toBe(6_348);
    expect(POOL_DEFAULTS.affinity).toEqual({ preferredConnections: 1 });
  });

  it('read true, false, their strings and partial objects', () => {
    expect(resolvePoolOptions({ affinity: true }).affinity).toEqual({ preferredConnections: 1 });
    expect(resolvePoolOptions({ affinity: false }).affinity).toBe(false);
    expect(resolvePoolOptions({ affinity: 'false' as never }).affinity).toBe(false);
    expect(resolvePoolOptions({ affinity: {} }).affinity).toEqual({ preferredConnections: 1 });
    expect(
      resolvePoolOptions({ max: 4, affinity: { preferredConnections: '4' as never } }).affinity,
    ).toEqual({ preferredConnections: 4 });
    expect(resolvePoolOptions({ backendMemory: false }).backendMemory).toBe(false);
    expect(resolvePoolOptions({ backendMemory: { budgetMiB: 32 } }).backendMemory).toEqual({
      budgetMiB: 32,
      perSchemaKiB: 10,
    });
  });

  it('are idempotent: resolved options resolve to themselves', () => {
    const once = resolvePoolOptions({
      affinity: { preferredConnections: 2 },
      backendMemory: false,
    });
    expect(resolvePoolOptions(once)).toEqual(once);
  });

  it('turn a budget into a schema bound of at least one', () => {
    expect(schemaBound({ budgetMiB: 3, perSchemaKiB: 300 })).toBe(3);
    expect(schemaBound({ budgetMiB: 3, perSchemaKiB: 5_000 })).toBe(1);
    expect(schemaBound({ budgetMiB: 100, perSchemaKiB: 10 })).toBe(10_035);
    expect(schemaBound(false)).toBeUndefined();
  });

  it.each([
    [{ affinity: 'yes' }, 'pool.affinity must be true or false, received the string "yes".'],
    [
      { affinity: [] },
      'pool.affinity must be true, false or an object { preferredConnections }, received an array.',
    ],
    [
      { affinity: { preferred: 2 } },
      'Unknown option "pool.affinity.preferred". Known options: preferredConnections.',
    ],
    [{ affinity: { preferredConnections: 0 } }, /preferredConnections must be a positive integer/],
    [
      { max: 3, affinity: { preferredConnections: 4 } },
      'pool.affinity.preferredConnections (4) cannot exceed pool.max (3): set it to at most pool.max, or set affinity: false',
    ],
    [
      { backendMemory: true },
      'pool.backendMemory must be false or an object { budgetMiB, perSchemaKiB }, received true.',
    ],
    [
      { backendMemory: { budgetMiB: 2 } },
      'pool.backendMemory.budgetMiB must be at least 3, received 2: a fresh backend alone takes about 2 MiB. Set a budget above it, or backendMemory: false',
    ],
    [{ backendMemory: { budgetMiB: 1.5 } }, /budgetMiB must be a positive integer/],
    [{ backendMemory: { perSchemaKiB: 0 } }, /perSchemaKiB must be a positive integer/],
    [
      { backendMemory: { budget: 8 } },
      'Unknown option "pool.backendMemory.budget". Known options: budgetMiB, perSchemaKiB.',
    ],
  ])('rejects %o with a message that says what to set', (options, message) => {
    expect(() => resolvePoolOptions(options as never)).toThrow(InvalidOptionsError);
    expect(() => resolvePoolOptions(options as never)).toThrow(message);
  });
});
