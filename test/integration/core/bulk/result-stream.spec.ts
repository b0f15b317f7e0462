import pg from 'pg';
import {
  DatabaseShuttingDownError,
  InvalidOptionsError,
  SchemaDb,
  TemplateError,
} from '../../../../lib/index.js';
import { DrainController } from '../../../../lib/advanced.js';
import { adminPool, useTestDatabase } from '../../../support/database.js';

const ROWS = 2_500;

describe('SchemaDb.stream', () => {
  const database = useTestDatabase();
  let pool: pg.Pool;
  let db: SchemaDb;

  beforeAll(async () => {
    pool = adminPool(database.current.url, 2);
    db = SchemaDb.create(pool, 'reads');
    await db.execute('CREATE SCHEMA {{schema}}');
    await db.execute('CREATE TABLE {{tables.numbers}} (n int PRIMARY KEY, label text)');
    await db.execute(
      "INSERT INTO {{tables.numbers}} SELECT g, 'n' || g FROM generate_series(1, $1::int) g",
      [ROWS],
    );
  });
  afterAll(() => pool.end());

  /** Every connection the pool has is idle again: none is held by a stream. */
  function expectAllReturned(): void {
    expect(pool.totalCount).toBeGreaterThan(0);
    expect(pool.idleCount).toBe(pool.totalCount);
    expect(pool.waitingCount).toBe(0);
  }

  it('yields every row in order, with bind parameters and templates', async () => {
    const seen: number[] = [];
    for await (const row of db.stream<{ n: number; label: string }>(
      'SELECT n, label FROM {{tables.numbers}} WHERE n > $1 ORDER BY n',
      [0],
      { batchSize: 100 },
    )) {
      expect(row.label).toBe(`n${row.n}`);
      seen.push(row.n);
    }
    expect(seen).toEqual(Array.from({ length: ROWS }, (_, i) => i + 1));
    expectAllReturned();
  });

  it('applies backpressure: the server is asked for the next batch only when the consumer wants it', async () => {
    const iterator = db.stream<{ n: number }>(
      // A volatile function per row counts the rows the server has produced so far.
      "SELECT n, nextval('reads.produced') AS produced FROM {{tables.numbers}} ORDER BY n",
      [],
      { batchSize: 50 },
    );
    await db.execute('CREATE SEQUENCE IF NOT EXISTS {{schema}}.produced');
    await db.execute("SELECT setval('reads.produced', 1, false)");
    for (let i = 0; i < 60; i++) await iterator.next();
    // Consumed 60: the first batch (50) and the second (50) were fetched, nothing more.
    const produced = await db.fetchValue<string>('SELECT last_value FROM {{schema}}.produced');
    expect(Number(produced)).toBe(100);
    await iterator.return();
    expectAllReturned();
  });

  it('returns the connection when the consumer breaks early', async () => {
    let count = 0;
    for await (const _ of db.stream('SELECT n FROM {{tables.numbers}}', [], { batchSize: 10 })) {
      if (++count === 15) break;
    }
    expect(count).toBe(15);
    expectAllReturned();
    // The connection is usable: no half-read portal left on it.
    expect(await db.fetchValue('SELECT count(*)::int FROM {{tables.numbers}}')).toBe(ROWS);
  });

  it('returns the connection when the consumer throws', async () => {
    const consume = async () => {
      for await (const row of db.stream<{ n: number }>('SELECT n FROM {{tables.numbers}}')) {
        if (row.n === 7) throw new Error('consumer failed');
      }
    };
    await expect(consume()).rejects.toThrow('consumer failed');
    expectAllReturned();
  });

  it('returns the connection when the query fails, before or during the rows', async () => {
    const drain = async (sql: string) => {
      for await (const _ of db.stream(sql, [], { batchSize: 10 })) void _;
    };
    await expect(drain('SELECT nope FROM {{tables.numbers}}')).rejects.toMatchObject({
      code: '42703',
    });
    expectAllReturned();
    await expect(
      drain('SELECT 1 / (n - 500) FROM {{tables.numbers}} ORDER BY n'),
    ).rejects.toMatchObject({ code: '22012' });
    expectAllReturned();
    expect(await db.fetchValue('SELECT 1')).toBe(1);
  });

  it('refuses a bad template before any SQL and a bad batch size', async () => {
    expect(() => db.stream('SELECT * FROM {{tablez.numbers}}')).toThrow(TemplateError);
    await expect(db.stream('SELECT 1', [], { batchSize: 0 }).next()).rejects.toBeInstanceOf(
      InvalidOptionsError,
    );
  });

  it('inside a transaction, streams on its connection and lets other statements run between rows', async () => {
    const checkedOut = () => pool.totalCount - pool.idleCount;
    await db
      .transaction(async (tx) => {
        await tx.execute("UPDATE {{tables.numbers}} SET label = 'tx' WHERE n = 1");
        let seen = 0;
        for await (const row of db.stream<{ n: number; label: string }>(
          'SELECT n, label FROM {{tables.numbers}} ORDER BY n',
          [],
          { batchSize: 100 },
        )) {
          if (row.n === 1) expect(row.label).toBe('tx'); // sees the transaction's own write
          if (++seen === 150) {
            expect(checkedOut()).toBe(1);
            expect(await tx.fetchValue('SELECT 42')).toBe(42);
            break;
          }
        }
        throw new Error('roll back');
      })
      .catch((err: Error) => expect(err.message).toBe('roll back'));
    expectAllReturned();
    expect(await db.fetchValue('SELECT label FROM {{tables.numbers}} WHERE n = 1')).toBe('n1');
  });

  it('the shutdown drain takes the connection back from a stream the consumer stopped reading', async () => {
    const drainController = new DrainController({ connectionString: database.current.url });
    const drainPool = adminPool(database.current.url, 2);
    const drained = SchemaDb.create({ pool: drainPool, drain: drainController }, 'reads');
    try {
      const iterator = drained.stream('SELECT n FROM {{tables.numbers}}', [], { batchSize: 10 });
      await drainController.admit(async () => {
        await iterator.next();
      });
      expect(drainController.busy.connections).toBe(1);
      const report = await drainController.drain(50, 50);
      expect(report).toMatchObject({ connections: 1, cancelled: 1 });
      expect(drainController.busy.connections).toBe(0);
      // The held connection was closed, not leaked: the pool holds nothing checked out.
      expect(drainPool.totalCount - drainPool.idleCount).toBe(0);
      // The consumer that comes back gets the rows of the batch in hand, then the stream
      // fails at its next fetch: the shutdown ended it.
      let late = 0;
      const readRest = async () => {
        while (!(await iterator.next()).done) late++;
      };
      await expect(readRest()).rejects.toThrow();
      expect(late).toBeLessThan(10);
      await expect(drained.stream('SELECT 1').next()).rejects.toBeInstanceOf(
        DatabaseShuttingDownError,
      );
    } finally {
      await drainPool.end();
    }
  });
});
