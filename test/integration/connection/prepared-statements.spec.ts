import { Test } from '@nestjs/testing';
import pg from 'pg';
import { Registry } from 'prom-client';
import {
  DatabaseModule,
  getSchemaDbToken,
  PreparedStatementStaleError,
  SchemaDb,
  type DatabaseModuleOptions,
  type SchemaDbCreateOptions,
} from '../../../lib/index.js';
import { DatabaseMonitor } from '../../../lib/observability/index.js';
import { adminPool, useTestDatabase } from '../../support/database.js';

/** Statements the server holds for the session that runs this (on a one-connection pool). */
const HELD = 'SELECT count(*)::int FROM pg_prepared_statements WHERE NOT from_sql';

describe('managed prepared statements', () => {
  const database = useTestDatabase();
  const pools: pg.Pool[] = [];
  let setup: SchemaDb;

  /** A manager over a pool of `max` connections of its own, closed in afterAll. */
  function manager(options: SchemaDbCreateOptions, max = 1, schema = 'ps'): SchemaDb {
    const pool = adminPool(database.current.url, max);
    pools.push(pool);
    return SchemaDb.create(pool, schema, options);
  }

  beforeAll(async () => {
    setup = manager({});
    await setup.execute('CREATE SCHEMA ps');
    await setup.execute(
      `CREATE TABLE {{tables.items}} (id int PRIMARY KEY, name text, price numeric(8,2),
         tags text[], doc jsonb, at timestamptz)`,
    );
    await setup.execute(
      `INSERT INTO {{tables.items}}
         SELECT g, 'item ' || g, g * 1.5, ARRAY['t' || g, 'x'], jsonb_build_object('n', g),
                '2026-01-01T00:00:00Z'::timestamptz + g * interval '1 hour'
         FROM generate_series(1, 20) g`,
    );
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.end()));
  });

  it('returns what the unprepared path returns, and reuses statements', async () => {
    const plain = manager({});
    const prepared = manager({ preparedStatements: true });
    const run = async (db: SchemaDb) => {
      const out: unknown[] = [];
      for (let round = 0; round < 3; round++) {
        for (const id of [1, 7, 20, 99]) {
          out.push(await db.fetchOne('SELECT * FROM {{tables.items}} WHERE id = $1', [id]));
          out.push(await db.fetchValue('SELECT name FROM {{tables.items}} WHERE id = $1', [id]));
          out.push(
            await db.fetchAll(
              'SELECT id, tags, doc FROM {{tables.items}} WHERE id <= $1 AND $2::text = ANY(tags) ORDER BY id',
              [id, 'x'],
            ),
          );
          out.push(
            (await db.query('UPDATE {{tables.items}} SET name = name WHERE id = $1', [id]))
              .rowCount,
          );
        }
      }
      return out;
    };
    expect(await run(prepared)).toEqual(await run(plain));
    expect(prepared.statementStats).toMatchObject({
      mode: 'on',
      misses: 8, // each statement's first use runs unnamed, its second prepares it
      prepared: 4,
      hits: 40,
      statements: 4,
      evictions: 0,
    });
    expect(prepared.statementStats!.hitRate).toBeCloseTo(40 / 48);
    expect(await prepared.fetchValue(HELD)).toBe(4);
    expect(plain.statementStats).toBeUndefined();
  });

  it('leaves parameterless SQL on the simple protocol (several statements still work)', async () => {
    const db = manager({ preparedStatements: true });
    await db.execute(
      'CREATE TABLE {{tables.multi}} (x int); INSERT INTO {{tables.multi}} VALUES (1)',
    );
    expect(await db.fetchValue('SELECT x FROM {{tables.multi}}')).toBe(1);
    expect(await db.fetchValue('SELECT count(*)::int FROM {{tables.items}}')).toBe(20);
    expect(db.statementStats).toMatchObject({ hits: 0, misses: 0, unprepared: 3 });
    expect(await db.fetchValue(HELD)).toBe(0);
  });

  it('re-prepares once after ALTER TABLE changes the result type (0A000), invisibly', async () => {
    const db = manager({ preparedStatements: { enabled: true, prepareThreshold: 1 } });
    await db.execute('CREATE TABLE {{tables.altered}} (id int PRIMARY KEY, a text)');
    await db.execute("INSERT INTO {{tables.altered}} VALUES (1, 'one')");
    const sql = 'SELECT * FROM {{tables.altered}} WHERE id = $1';
    expect(await db.fetchOne(sql, [1])).toEqual({ id: 1, a: 'one' });
    expect(await db.fetchOne(sql, [1])).toEqual({ id: 1, a: 'one' });
    // Another connection migrates the table under the cached statement.
    await setup.execute('ALTER TABLE {{tables.altered}} ADD COLUMN b int NOT NULL DEFAULT 7');
    expect(await db.fetchOne(sql, [1])).toEqual({ id: 1, a: 'one', b: 7 });
    expect(await db.fetchOne(sql, [1])).toEqual({ id: 1, a: 'one', b: 7 });
    expect(db.statementStats).toMatchObject({ reprepared: 1, statements: 1 });
    // The invalid statement was closed on the server, not leaked.
    expect(await db.fetchValue(HELD)).toBe(1);
  });

  it('re-prepares once when the server lost the statement (26000, DEALLOCATE ALL)', async () => {
    const db = manager({ preparedStatements: { enabled: true, prepareThreshold: 1 } });
    const sql = 'SELECT name FROM {{tables.items}} WHERE id = $1';
    expect(await db.fetchValue(sql, [3])).toBe('item 3');
    await db.execute('DEALLOCATE ALL');
    expect(await db.fetchValue(sql, [3])).toBe('item 3');
    expect(db.statementStats).toMatchObject({ reprepared: 1, hits: 1, misses: 2 });
  });

  it('re-runs a statement only once: stale again after re-preparing, the caller gets the typed error', async () => {
    const db = manager({ preparedStatements: { enabled: true, prepareThreshold: 1 } });
    // A server that keeps answering "stale" (a migration racing every attempt, or a pooler
    // that loses statements): the function reports 0A000 on its first 9 calls, then succeeds.
    await db.execute('CREATE SEQUENCE {{schema}}.stale_calls');
    await db.execute(
      `CREATE FUNCTION {{schema}}.always_stale(n int) RETURNS int LANGUAGE plpgsql AS $$
       BEGIN
         IF nextval('{{schema}}.stale_calls') < 10 THEN
           RAISE EXCEPTION 'cached plan must not change result type' USING ERRCODE = '0A000';
         END IF;
         RETURN n;
       END $$`,
    );
    const attempt = db.fetchValue('SELECT {{schema}}.always_stale($1)', [1]);
    await expect(attempt).rejects.toBeInstanceOf(PreparedStatementStaleError);
    await expect(attempt).rejects.toThrow(/still invalid after it was prepared again/);
    // The first run and one retry, never more (sequences are not rolled back).
    expect(await db.fetchValue('SELECT last_value::int FROM {{schema}}.stale_calls')).toBe(2);
    expect(db.statementStats).toMatchObject({ reprepared: 1, statements: 0 });
  });

  it('never prepares inside a transaction by default, so a migration cannot abort one', async () => {
    const db = manager({ preparedStatements: { enabled: true, prepareThreshold: 1 } });
    await db.execute('CREATE TABLE {{tables.tx_default}} (id int PRIMARY KEY)');
    await db.execute('INSERT INTO {{tables.tx_default}} VALUES (1)');
    const sql = 'SELECT * FROM {{tables.tx_default}} WHERE id = $1';
    await db.fetchOne(sql, [1]);
    await setup.execute('ALTER TABLE {{tables.tx_default}} ADD COLUMN extra int');
    const row = await db.transaction((tx) => tx.fetchOne(sql, [1]));
    expect(row).toEqual({ id: 1, extra: null });
    expect(db.statementStats).toMatchObject({ misses: 1, hits: 0, reprepared: 0 });
  });

  it('inTransactions: an invalidated statement fails the aborted transaction with a typed error, and retries recover', async () => {
    const db = manager({
      preparedStatements: { enabled: true, inTransactions: true, prepareThreshold: 1 },
    });
    await db.execute('CREATE TABLE {{tables.tx_on}} (id int PRIMARY KEY)');
    await db.execute('INSERT INTO {{tables.tx_on}} VALUES (1)');
    const sql = 'SELECT * FROM {{tables.tx_on}} WHERE id = $1';
    await db.fetchOne(sql, [1]);
    await setup.execute('ALTER TABLE {{tables.tx_on}} ADD COLUMN extra int');
    const attempt = db.transaction(async (tx) => {
      await tx.execute('INSERT INTO {{tables.tx_on}} (id) VALUES ($1)', [2]);
      return tx.fetchOne(sql, [1]);
    });
    await expect(attempt).rejects.toBeInstanceOf(PreparedStatementStaleError);
    await expect(attempt).rejects.toMatchObject({ code: '0A000' });
    // Nothing of the aborted transaction was kept.
    expect(await db.fetchValue('SELECT count(*)::int FROM {{tables.tx_on}}')).toBe(1);
    await setup.execute('ALTER TABLE {{tables.tx_on}} ADD COLUMN more int');
    const retried = await db.transaction((tx) => tx.fetchOne(sql, [1]), { retries: 1 });
    expect(retried).toEqual({ id: 1, extra: null, more: null });
    expect(db.statementStats!.reprepared).toBe(0);
  });

  it('evicts the least recently used statement beyond maxPerConnection and closes it on the server', async () => {
    const db = manager({
      preparedStatements: { enabled: true, maxPerConnection: 3, prepareThreshold: 1 },
    });
    const sql = (n: number) => `SELECT ${n} AS n, name FROM {{tables.items}} WHERE id = $1`;
    for (const n of [1, 2, 3]) await db.fetchOne(sql(n), [n]);
    await db.fetchOne(sql(1), [1]); // 1 is now the most recent: 2 goes first
    await db.fetchOne(sql(4), [4]);
    await db.fetchOne(sql(5), [5]);
    expect(db.statementStats).toMatchObject({ misses: 5, hits: 1, evictions: 2, statements: 3 });
    const held = await db.fetchAll<{ statement: string }>(
      'SELECT statement FROM pg_prepared_statements WHERE NOT from_sql ORDER BY statement',
    );
    expect(held.map((r) => /SELECT (\d)/.exec(r.statement)?.[1])).toEqual(['1', '4', '5']);
    await db.fetchOne(sql(1), [1]);
    expect(db.statementStats).toMatchObject({ hits: 2, misses: 5 });
  });

  it('never prepares SQL that is evicted before its second use (more statements than the bound)', async () => {
    const db = manager({ preparedStatements: { enabled: true, maxPerConnection: 2 } });
    const sql = (n: number) => `SELECT ${n} AS n, name FROM {{tables.items}} WHERE id = $1`;
    for (let round = 0; round < 3; round++) {
      for (const n of [1, 2, 3, 4]) expect(await db.fetchOne(sql(n), [n])).toMatchObject({ n });
    }
    expect(db.statementStats).toMatchObject({ hits: 0, misses: 12, prepared: 0, statements: 0 });
    expect(await db.fetchValue(HELD)).toBe(0);
  });

  it('forgets a statement that failed to parse', async () => {
    const db = manager({ preparedStatements: { enabled: true, prepareThreshold: 1 } });
    await expect(
      db.fetchOne('SELEC name FROM {{tables.items}} WHERE id = $1', [1]),
    ).rejects.toMatchObject({
      code: '42601',
    });
    expect(db.statementStats).toMatchObject({ statements: 0 });
    expect(await db.fetchValue('SELECT name FROM {{tables.items}} WHERE id = $1', [2])).toBe(
      'item 2',
    );
    expect(await db.fetchValue(HELD)).toBe(1);
  });

  it("'auto' stays off behind a pooler (the announced backend key is not the server pid)", async () => {
    const pool = adminPool(database.current.url, 2);
    pools.push(pool);
    // What PgBouncer looks like to a client: BackendKeyData carries its own key.
    pool.on('connect', (client) => {
      (client as unknown as { processID: number }).processID = -1;
    });
    const auto = SchemaDb.create(pool, 'ps', { preparedStatements: 'auto' });
    const forced = SchemaDb.create(pool, 'ps', { preparedStatements: { enabled: true } });
    for (let i = 0; i < 5; i++) {
      expect(await auto.fetchValue('SELECT name FROM {{tables.items}} WHERE id = $1', [1])).toBe(
        'item 1',
      );
    }
    expect(auto.statementStats).toMatchObject({
      mode: 'pooler',
      hits: 0,
      misses: 0,
      unprepared: 5,
    });
    expect(await auto.fetchValue(HELD)).toBe(0);
    await forced.fetchValue('SELECT name FROM {{tables.items}} WHERE id = $1', [1]);
    await forced.fetchValue('SELECT name FROM {{tables.items}} WHERE id = $1', [1]);
    expect(forced.statementStats).toMatchObject({ mode: 'on', misses: 2, prepared: 1 });
    expect(await forced.fetchValue(HELD)).toBe(1);
  });

  it("'auto' turns on against PostgreSQL directly, from the second query", async () => {
    const db = manager({ preparedStatements: 'auto' });
    expect(db.statementStats!.mode).toBe('detecting');
    for (let i = 0; i < 4; i++)
      await db.fetchValue('SELECT name FROM {{tables.items}} WHERE id = $1', [i + 1]);
    // The first query runs unnamed while the connection is probed; the next one is a first use.
    expect(db.statementStats).toMatchObject({
      mode: 'on',
      unprepared: 1,
      misses: 2,
      prepared: 1,
      hits: 1,
    });
  });

  /** Runs `fn` on the `ps` manager and monitor of an app with `options`, then closes it. */
  async function withModule(
    options: Partial<DatabaseModuleOptions>,
    fn: (db: SchemaDb, monitor: DatabaseMonitor) => Promise<void>,
  ): Promise<void> {
    const app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          pool: { max: 1 },
          schemas: { ps: {} },
          migrateOnStartup: false,
          ...options,
        }),
      ],
    }).compile();
    await app.init();
    try {
      await fn(app.get<SchemaDb>(getSchemaDbToken('ps')), app.get(DatabaseMonitor));
    } finally {
      await app.close();
    }
  }

  it('the module prepares by default and reports the hit rate on DatabaseMonitor', async () => {
    await withModule({}, async (db, monitor) => {
      for (let i = 1; i <= 6; i++) {
        await db.fetchValue('SELECT name FROM {{tables.items}} WHERE id = $1', [i]);
      }
      const stats = monitor.getStatementStats();
      expect(stats).toMatchObject({ mode: 'on', misses: 2, hits: 3, maxPerConnection: 1_000 });
      expect(stats!.hitRate).toBeCloseTo(0.6);
    });
  });

  it('preparedStatements: false in the module sends every query unnamed', async () => {
    await withModule({ preparedStatements: false }, async (db, monitor) => {
      await db.fetchValue('SELECT name FROM {{tables.items}} WHERE id = $1', [1]);
      expect(await db.fetchValue(HELD)).toBe(0);
      expect(monitor.getStatementStats()).toBeUndefined();
    });
  });

  it('exports the cache counters to Prometheus', async () => {
    const registry = new Registry();
    await withModule({ metrics: { prometheus: { registry } } }, async (db) => {
      for (let i = 1; i <= 6; i++) {
        await db.fetchValue('SELECT name FROM {{tables.items}} WHERE id = $1', [i]);
      }
      const text = await registry.metrics();
      expect(text).toMatch(/pg_tenancy_prepared_statements_total\{result="hits"\} 3/);
      expect(text).toMatch(/pg_tenancy_prepared_statements_total\{result="misses"\} 2/);
      expect(text).toMatch(/pg_tenancy_prepared_statements 1/);
    });
  });
});
