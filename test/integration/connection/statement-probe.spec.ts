// 'auto' prepared statements probe the first connection for a pooler in front. The probe runs
// before the caller's query, not queued beside it: pg 8 warns when a query is queued behind
// another (a DeprecationWarning, "already executing a query") and pg 9 drops that queue.
import pg from 'pg';
import { SchemaDb } from '../../../lib/index.js';
import { adminPool, useTestDatabase } from '../../support/database.js';

describe("'auto' prepared statements: the pooler probe", () => {
  const database = useTestDatabase();
  let pool: pg.Pool;

  beforeAll(() => {
    pool = adminPool(database.current.url, 2);
  });
  afterAll(() => pool.end());

  it('runs before the first query of a new connection, never queued beside it', async () => {
    // pg's own condition for the warning: a query() call while its queue is not empty. (Jest's
    // sandboxed process does not deliver 'warning' events, so the condition is watched.)
    const queued: string[] = [];
    pool.on('connect', (client) => {
      const queue = (client as unknown as { _queryQueue: unknown[] })._queryQueue;
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args) => {
        if (queue.length > 0) queued.push(String((args[0] as { text?: string }).text ?? args[0]));
        return query(...args);
      };
    });
    const db = SchemaDb.create(pool, 'public', { preparedStatements: 'auto' });
    const answers = await Promise.all(
      [1, 2, 3, 4, 5, 6].map((n) => db.fetchValue<number>('SELECT $1::int * 2', [n])),
    );
    expect(answers).toEqual([2, 4, 6, 8, 10, 12]);
    expect(db.statementStats!.mode).toBe('on');
    expect(queued).toEqual([]);
  });
});
