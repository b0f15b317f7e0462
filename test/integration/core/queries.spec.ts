import pg from 'pg';
import {
  InvalidIdentifierError,
  quoteIdentifier,
  SchemaDb,
  TemplateError,
} from '../../../lib/index.js';
import { adminPool, useTestDatabase } from '../../support/database.js';

describe('SchemaDb queries', () => {
  const database = useTestDatabase();
  let pool: pg.Pool;
  let orders: SchemaDb;
  let archive: SchemaDb;

  beforeAll(async () => {
    pool = adminPool(database.current.url, 4);
    orders = SchemaDb.create(pool, 'orders');
    archive = SchemaDb.create(pool, 'archive');
    for (const db of [orders, archive]) {
      await db.execute('CREATE SCHEMA {{schema}}');
      await db.execute(
        'CREATE TABLE {{tables.orders}} (id serial PRIMARY KEY, item text NOT NULL)',
      );
    }
  });
  afterAll(() => pool.end());

  it('execute returns the affected row count', async () => {
    expect(await orders.execute("INSERT INTO {{tables.orders}} (item) VALUES ('a'), ('b')")).toBe(
      2,
    );
    expect(await orders.execute('CREATE TEMP TABLE scratch (x int)')).toBe(0);
  });

  it('fetchAll, fetchOne and fetchValue read rows with bind parameters', async () => {
    await orders.execute('TRUNCATE {{tables.orders}}');
    await orders.execute('INSERT INTO {{tables.orders}} (item) SELECT unnest($1::text[])', [
      ['x', 'y'],
    ]);
    const rows = await orders.fetchAll<{ item: string }>(
      'SELECT item FROM {{tables.orders}} ORDER BY item',
    );
    expect(rows.map((r) => r.item)).toEqual(['x', 'y']);
    expect(
      await orders.fetchOne('SELECT item FROM {{tables.orders}} WHERE item = $1', ['y']),
    ).toEqual({ item: 'y' });
    expect(
      await orders.fetchOne('SELECT item FROM {{tables.orders}} WHERE item = $1', ['none']),
    ).toBeNull();
    expect(await orders.fetchValue<string>('SELECT count(*)::int FROM {{tables.orders}}')).toBe(2);
    expect(await orders.fetchValue('SELECT item FROM {{tables.orders}} WHERE false')).toBeNull();
    expect(await orders.fetchValue('SELECT NULL::int')).toBeNull();
  });

  it('fetchValue reads the first column by position, whatever the column names', async () => {
    expect(await orders.fetchValue('SELECT 1, 2')).toBe(1);
    expect(await orders.fetchValue('SELECT 1 AS a, 2 AS a')).toBe(1);
    expect(await orders.fetchValue('SELECT NULL::int, 2')).toBeNull();
    expect(await orders.fetchValue('SELECT 1 WHERE false')).toBeNull();
    await orders.transaction(async (tx) => {
      expect(await tx.fetchValue('SELECT $1::int, 2', [7])).toBe(7);
    });
  });

  it('query returns the full pg result', async () => {
    const result = await orders.query<{ n: number }>('SELECT 1 AS n');
    expect(result.rows).toEqual([{ n: 1 }]);
    expect(result.fields.map((f) => f.name)).toEqual(['n']);
  });

  it('keeps two schemas with the same table name isolated', async () => {
    await orders.execute('TRUNCATE {{tables.orders}}');
    await archive.execute('TRUNCATE {{tables.orders}}');
    await orders.execute("INSERT INTO {{tables.orders}} (item) VALUES ('live')");
    await archive.execute("INSERT INTO {{tables.orders}} (item) VALUES ('old'), ('older')");
    expect(await orders.fetchAll('SELECT item FROM {{tables.orders}}')).toEqual([{ item: 'live' }]);
    expect(await archive.fetchValue('SELECT count(*)::int FROM {{tables.orders}}')).toBe(2);
  });

  it('never changes search_path on pooled connections', async () => {
    const paths = await Promise.all(
      Array.from({ length: 8 }, () => orders.fetchValue<string>('SHOW search_path')),
    );
    expect(new Set(paths)).toEqual(new Set(['"$user", public']));
  });

  it('keeps literals and comments as written and expands function bodies', async () => {
    await orders.execute(
      'CREATE TABLE {{tables.greetings}} (text text NOT NULL, "{{tables.x}}" int)',
    );
    await orders.execute(
      `INSERT INTO {{tables.greetings}} (text, "{{tables.x}}") -- TODO {{ later }}
       VALUES ('Hello {{first_name}}', 1), (E'it\\'s {{tables.greetings}}', 2) /* {{x}} */`,
    );
    expect(
      await orders.fetchAll(
        'SELECT text, "{{tables.x}}" AS n FROM {{tables.greetings}} ORDER BY 2',
      ),
    ).toEqual([
      { text: 'Hello {{first_name}}', n: 1 },
      { text: "it's {{tables.greetings}}", n: 2 },
    ]);
    await orders.execute(
      `CREATE FUNCTION {{tables.greeting_count}}() RETURNS bigint LANGUAGE plpgsql AS $fn$
       BEGIN RETURN (SELECT count(*) FROM {{tables.greetings}}); END $fn$`,
    );
    expect(await orders.fetchValue('SELECT {{tables.greeting_count}}()')).toBe('2');
  });

  it('reports table() and prepareQuery() as they will be sent', () => {
    expect(orders.table('orders')).toBe('"orders"."orders"');
    expect(orders.prepareQuery('DELETE FROM {{tables.orders}}')).toBe(
      'DELETE FROM "orders"."orders"',
    );
    expect(orders.schema).toBe('orders');
    expect(orders.withSchema('archive').table('orders')).toBe('"archive"."orders"');
  });

  it('rejects a bad template before opening any connection', async () => {
    const fresh = adminPool(database.current.url, 1);
    const db = SchemaDb.create(fresh, 'orders');
    try {
      await expect(db.fetchAll('SELECT * FROM {{tables.orders}')).rejects.toBeInstanceOf(
        TemplateError,
      );
      await expect(db.fetchAll('SELECT * FROM {{tables.bad name}}')).rejects.toBeInstanceOf(
        InvalidIdentifierError,
      );
      await expect(db.fetchAll('SELECT {{nope}}')).rejects.toThrow(/Unknown placeholder/);
      expect(fresh.totalCount).toBe(0);
    } finally {
      await fresh.end();
    }
  });

  it('quotes awkward identifiers so PostgreSQL sees exactly that name', async () => {
    const names = ['select', 'with space', 'with"quote', 'MixedCase', 'x'.repeat(63)];
    const db = SchemaDb.create(pool, null);
    await db.execute('CREATE SCHEMA awkward');
    for (const name of names) {
      await db.execute(`CREATE TABLE awkward.${quoteIdentifier(name)} (v int)`);
    }
    const stored = await db.fetchAll<{ relname: string }>(
      "SELECT relname FROM pg_class WHERE relnamespace = 'awkward'::regnamespace ORDER BY relname",
    );
    expect(stored.map((r) => r.relname).sort()).toEqual([...names].sort());
    expect(() => quoteIdentifier('x'.repeat(64))).toThrow(InvalidIdentifierError);
    expect(() => quoteIdentifier('')).toThrow(InvalidIdentifierError);
    expect(() => quoteIdentifier('a\0b')).toThrow(InvalidIdentifierError);
  });

  it('uses reserved words as table names through templates', async () => {
    const db = SchemaDb.create(pool, 'user');
    await db.execute('CREATE SCHEMA {{schema}}');
    await db.execute('CREATE TABLE {{tables.order}} (id int)');
    await db.execute('INSERT INTO {{tables.order}} VALUES (1)');
    expect(await db.fetchValue('SELECT id FROM {{tables.order}}')).toBe(1);
  });
});
