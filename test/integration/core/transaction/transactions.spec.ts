import pg from 'pg';
import {
  ConcurrentSavepointError,
  InvalidOptionsError,
  SavepointActiveError,
  SchemaDb,
  TransactionAbortedError,
  TransactionClosedError,
} from '../../../../lib/index.js';
import { adminPool, useTestDatabase } from '../../../support/database.js';

describe('SchemaDb.transaction', () => {
  const database = useTestDatabase();
  let pool: pg.Pool;
  let db: SchemaDb;

  const count = () => db.fetchValue<number>('SELECT count(*)::int FROM {{tables.items}}');
  const expectPoolIdle = () => {
    expect(pool.waitingCount).toBe(0);
    expect(pool.idleCount).toBe(pool.totalCount);
  };

  beforeAll(async () => {
    pool = adminPool(database.current.url, 4);
    db = SchemaDb.create(pool, 'tx');
    await db.execute('CREATE SCHEMA {{schema}}');
    await db.execute(
      'CREATE TABLE {{tables.items}} (id int PRIMARY KEY, v int NOT NULL DEFAULT 0)',
    );
    await db.execute(
      `CREATE TABLE {{tables.deferred}} (id int PRIMARY KEY,
         parent int REFERENCES {{tables.items}} (id) DEFERRABLE INITIALLY DEFERRED)`,
    );
  });
  beforeEach(() => db.execute('TRUNCATE {{tables.items}} CASCADE'));
  afterAll(() => pool.end());

  it('commits when the callback resolves and returns its value', async () => {
    const result = await db.transaction(async (tx) => {
      expect(tx.inTransaction).toBe(true);
      await tx.execute('INSERT INTO {{tables.items}} (id) VALUES (1), (2)');
      return 'done';
    });
    expect(result).toBe('done');
    expect(await count()).toBe(2);
    expectPoolIdle();
  });

  it('rolls back and rethrows when the callback throws', async () => {
    const failure = new Error('boom');
    await expect(
      db.transaction(async (tx) => {
        await tx.execute('INSERT INTO {{tables.items}} (id) VALUES (1)');
        throw failure;
      }),
    ).rejects.toBe(failure);
    expect(await count()).toBe(0);
    expectPoolIdle();
  });

  it('rolls back after a SQL error and keeps the connection in the pool', async () => {
    const pidBefore = await db.transaction((tx) =>
      tx.fetchValue<number>('SELECT pg_backend_pid()'),
    );
    await expect(
      db.transaction(async (tx) => {
        await tx.execute('INSERT INTO {{tables.items}} (id) VALUES (1)');
        await tx.execute('INSERT INTO {{tables.items}} (id) VALUES (1)');
      }),
    ).rejects.toMatchObject({ code: '23505' });
    expect(await count()).toBe(0);
    expectPoolIdle();
    const pids = await Promise.all(
      [1, 2, 3, 4].map(() =>
        db.transaction((tx) => tx.fetchValue<number>('SELECT pg_backend_pid()')),
      ),
    );
    expect(pids).toContain(pidBefore);
  });

  it('releases the client when COMMIT itself fails', async () => {
    await expect(
      db.transaction(async (tx) => {
        await tx.execute('INSERT INTO {{tables.deferred}} (id, parent) VALUES (1, 999)');
      }),
    ).rejects.toMatchObject({ code: '23503' });
    expect(await db.fetchValue('SELECT count(*)::int FROM {{tables.deferred}}')).toBe(0);
    expectPoolIdle();
  });

  it('runs a nested transaction in a savepoint that can fail alone', async () => {
    await db.transaction(async (tx) => {
      await tx.execute('INSERT INTO {{tables.items}} (id) VALUES (1)');
      await expect(
        tx.transaction(async (inner) => {
          await inner.execute('INSERT INTO {{tables.items}} (id) VALUES (2)');
          throw new Error('inner failure');
        }),
      ).rejects.toThrow('inner failure');
      await tx.transaction(async (inner) => {
        await inner.execute('INSERT INTO {{tables.items}} (id) VALUES (3)');
        await inner.transaction((deeper) =>
          deeper.execute('INSERT INTO {{tables.items}} (id) VALUES (4)'),
        );
      });
    });
    const ids = await db.fetchAll<{ id: number }>('SELECT id FROM {{tables.items}} ORDER BY id');
    expect(ids.map((r) => r.id)).toEqual([1, 3, 4]);
    expectPoolIdle();
  });

  it('rolls back savepoint work when the outer transaction fails', async () => {
    await expect(
      db.transaction(async (tx) => {
        await tx.transaction((inner) =>
          inner.execute('INSERT INTO {{tables.items}} (id) VALUES (1)'),
        );
        throw new Error('outer');
      }),
    ).rejects.toThrow('outer');
    expect(await count()).toBe(0);
  });

  it.each([
    ['read committed', 'read committed'],
    ['repeatable read', 'repeatable read'],
    ['serializable', 'serializable'],
  ] as const)('sets isolation level %s', async (level, shown) => {
    const actual = await db.transaction(
      (tx) => tx.fetchValue<string>('SHOW transaction_isolation'),
      {
        isolationLevel: level,
      },
    );
    expect(actual).toBe(shown);
  });

  it('starts read-only transactions that refuse writes', async () => {
    await expect(
      db.transaction((tx) => tx.execute('INSERT INTO {{tables.items}} (id) VALUES (1)'), {
        readOnly: true,
      }),
    ).rejects.toMatchObject({ code: '25006' });
    expect(
      await db.transaction((tx) => tx.fetchValue('SHOW transaction_read_only'), { readOnly: true }),
    ).toBe('on');
  });

  it('rejects options that cannot apply', async () => {
    await expect(
      db.transaction(async () => 1, { isolationLevel: 'chaos' as never }),
    ).rejects.toBeInstanceOf(InvalidOptionsError);
    await expect(db.transaction(async () => 1, { retries: -1 })).rejects.toBeInstanceOf(
      InvalidOptionsError,
    );
    await expect(
      db.transaction((tx) => tx.transaction(async () => 1, { isolationLevel: 'serializable' })),
    ).rejects.toBeInstanceOf(InvalidOptionsError);
    expectPoolIdle();
  });

  it('refuses a transaction manager used after its transaction ended', async () => {
    let leaked: SchemaDb | undefined;
    await db.transaction(async (tx) => {
      leaked = tx;
    });
    await expect(leaked!.fetchValue('SELECT 1')).rejects.toBeInstanceOf(TransactionClosedError);
  });

  it('refuses to report a commit when a caught error had aborted the transaction', async () => {
    const pid = await db.fetchValue<number>('SELECT pg_backend_pid()');
    await expect(
      db.transaction(async (tx) => {
        await tx.execute('INSERT INTO {{tables.items}} (id) VALUES (1)');
        await tx.execute('INSERT INTO {{tables.items}} (id) VALUES (1)').catch(() => undefined);
      }),
    ).rejects.toBeInstanceOf(TransactionAbortedError);
    expect(await count()).toBe(0);
    expectPoolIdle();
    expect(pool.totalCount).toBeGreaterThanOrEqual(1);
    const pids = await Promise.all(
      [1, 2, 3, 4].map(() => db.transaction((tx) => tx.fetchValue('SELECT pg_backend_pid()'))),
    );
    expect(pids).toContain(pid);
  });

  it('keeps the connection when the callback throws an application error', async () => {
    const before = pool.totalCount;
    const pids = new Set<number>();
    for (let i = 0; i < 5; i++) {
      await db
        .transaction(async (tx) => {
          pids.add((await tx.fetchValue<number>('SELECT pg_backend_pid()'))!);
          throw new TypeError('validation failed');
        })
        .catch(() => undefined);
    }
    expect(pool.totalCount).toBe(before);
    expect(pids.size).toBe(1);
  });

  it('closes savepoint managers when the outer transaction ends', async () => {
    let inner: SchemaDb | undefined;
    await db.transaction(async (tx) => {
      await tx.transaction(async (sp) => {
        inner = sp;
      });
    });
    await expect(inner!.fetchValue('SELECT 1')).rejects.toBeInstanceOf(TransactionClosedError);

    // A savepoint left running (not awaited) when the outer transaction commits: its later
    // statements must not reach the connection, which is back in the pool by then.
    let resume!: () => void;
    const gate = new Promise<void>((resolve) => (resume = resolve));
    let orphan: Promise<unknown> | undefined;
    await db.transaction(async (tx) => {
      orphan = tx.transaction(async (sp) => {
        await gate;
        await sp.execute('INSERT INTO {{tables.items}} (id) VALUES (9)');
      });
      orphan.catch(() => undefined);
    });
    resume();
    await expect(orphan).rejects.toBeInstanceOf(TransactionClosedError);
    expect(await count()).toBe(0);
    expectPoolIdle();
  });

  it('rejects savepoints opened side by side on one transaction', async () => {
    await expect(
      db.transaction((tx) =>
        Promise.all([
          tx.transaction((a) => a.execute('INSERT INTO {{tables.items}} (id) VALUES (1)')),
          tx.transaction((b) => b.execute('INSERT INTO {{tables.items}} (id) VALUES (2)')),
        ]),
      ),
    ).rejects.toBeInstanceOf(ConcurrentSavepointError);
    expect(await count()).toBe(0);
    expectPoolIdle();
  });

  it('refuses an outer query while a savepoint is open, so its rollback cannot undo it', async () => {
    let outer: PromiseSettledResult<number> | undefined;
    let step: PromiseSettledResult<void> | undefined;
    await db.transaction(async (tx) => {
      [step, outer] = await Promise.allSettled([
        tx.transaction(async (sp) => {
          await sp.execute('INSERT INTO {{tables.items}} (id) VALUES (1)');
          throw new Error('step failed');
        }),
        tx.execute('INSERT INTO {{tables.items}} (id) VALUES (2)'),
        tx.withSchema('tx').execute('INSERT INTO {{tables.items}} (id) VALUES (3)'),
      ]);
      // After the savepoint has ended, the outer manager works again.
      await tx.execute('INSERT INTO {{tables.items}} (id) VALUES (4)');
    });
    expect(step?.status).toBe('rejected');
    expect(outer?.status).toBe('rejected');
    expect((outer as PromiseRejectedResult).reason).toBeInstanceOf(SavepointActiveError);
    // Nothing reported as written was lost: the only row is the one written after the savepoint.
    expect(await db.fetchAll('SELECT id FROM {{tables.items}} ORDER BY id')).toEqual([{ id: 4 }]);
    expectPoolIdle();
  });

  it('lets an outer query issued before the savepoint run outside it', async () => {
    await db.transaction(async (tx) => {
      const first = tx.execute('INSERT INTO {{tables.items}} (id) VALUES (1)');
      await expect(
        tx.transaction(async (sp) => {
          await sp.execute('INSERT INTO {{tables.items}} (id) VALUES (2)');
          throw new Error('undo the savepoint only');
        }),
      ).rejects.toThrow('undo the savepoint only');
      expect(await first).toBe(1);
    });
    expect(await db.fetchAll('SELECT id FROM {{tables.items}} ORDER BY id')).toEqual([{ id: 1 }]);
  });

  it('spans schemas on one connection with withSchema()', async () => {
    const other = db.withSchema('tx_other');
    await other.execute('CREATE SCHEMA {{schema}}');
    await other.execute('CREATE TABLE {{tables.log}} (id int)');
    await expect(
      db.transaction(async (tx) => {
        await tx.execute('INSERT INTO {{tables.items}} (id) VALUES (1)');
        await tx.withSchema('tx_other').execute('INSERT INTO {{tables.log}} VALUES (1)');
        throw new Error('undo both');
      }),
    ).rejects.toThrow('undo both');
    expect(await count()).toBe(0);
    expect(await other.fetchValue('SELECT count(*)::int FROM {{tables.log}}')).toBe(0);
  });

  describe('retries', () => {
    const concurrentUpdate = (value: string) =>
      db.transaction(
        (other) => other.execute(`UPDATE {{tables.items}} SET v = ${value} WHERE id = 1`),
        {
          propagation: 'requires-new',
        },
      );
    // A real serialization failure: the transaction reads a row, another session updates and
    // commits it, then the transaction updates the same row (SQLSTATE 40001). The retry runs
    // with no competing update and succeeds.
    it('re-runs the callback after a serialization failure', async () => {
      await db.execute('INSERT INTO {{tables.items}} (id, v) VALUES (1, 0)');
      let attempts = 0;
      const result = await db.transaction(
        async (tx) => {
          attempts++;
          await tx.fetchValue('SELECT v FROM {{tables.items}} WHERE id = 1');
          // The outer manager would join this transaction: another session needs its own.
          if (attempts === 1) await concurrentUpdate('v + 100');
          await tx.execute('UPDATE {{tables.items}} SET v = v + 1 WHERE id = 1');
          return tx.fetchValue<number>('SELECT v FROM {{tables.items}} WHERE id = 1');
        },
        { isolationLevel: 'repeatable read', retries: 2 },
      );
      expect(attempts).toBe(2);
      expect(result).toBe(101);
      expectPoolIdle();
    });

    it('gives up after the allowed retries with the serialization error', async () => {
      await db.execute('INSERT INTO {{tables.items}} (id, v) VALUES (1, 0)');
      let attempts = 0;
      await expect(
        db.transaction(
          async (tx) => {
            attempts++;
            await tx.fetchValue('SELECT v FROM {{tables.items}} WHERE id = 1');
            await concurrentUpdate('v + 1');
            await tx.execute('UPDATE {{tables.items}} SET v = v + 1 WHERE id = 1');
          },
          { isolationLevel: 'serializable', retries: 1 },
        ),
      ).rejects.toMatchObject({ code: '40001' });
      expect(attempts).toBe(2);
      expectPoolIdle();
    });

    it('never retries other errors', async () => {
      let attempts = 0;
      await expect(
        db.transaction(
          async (tx) => {
            attempts++;
            await tx.execute('SELECT * FROM {{tables.missing}}');
          },
          { retries: 5 },
        ),
      ).rejects.toMatchObject({ code: '42P01' });
      expect(attempts).toBe(1);
    });
  });
});
