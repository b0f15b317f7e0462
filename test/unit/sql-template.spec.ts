import { InvalidIdentifierError, TemplateError } from '../../lib/errors.js';
import { SqlTemplate, TemplateCache } from '../../lib/core/sql-template.js';

describe('SqlTemplate', () => {
  const orders = new SqlTemplate('orders');
  const unqualified = new SqlTemplate(null);

  it('qualifies {{tables.x}} with the schema and quotes both parts', () => {
    expect(orders.expand('SELECT * FROM {{tables.orders}} WHERE id = $1')).toBe(
      'SELECT * FROM "orders"."orders" WHERE id = $1',
    );
  });

  it('expands {{schema}} and tolerates spaces inside the braces', () => {
    expect(
      orders.expand('CREATE SCHEMA IF NOT EXISTS {{schema}}; SELECT 1 FROM {{ tables.items }}'),
    ).toBe('CREATE SCHEMA IF NOT EXISTS "orders"; SELECT 1 FROM "orders"."items"');
  });

  it('leaves tables unqualified on a manager without a schema', () => {
    expect(unqualified.expand('SELECT * FROM {{tables.users}}')).toBe('SELECT * FROM "users"');
  });

  it('rejects {{schema}} on a manager without a schema', () => {
    expect(() => unqualified.expand('SELECT {{schema}}')).toThrow(TemplateError);
  });

  it('leaves SQL without placeholders untouched, including array literals', () => {
    const sql = "SELECT '{{1,2},{3,4}}'::int[], '{}'::jsonb";
    expect(orders.expand(sql)).toBe(sql);
  });

  it.each([
    [
      'an unknown placeholder',
      'SELECT * FROM {{table.orders}}',
      /Unknown placeholder \{\{table\.orders\}\}/,
    ],
    ['an unknown name', 'SELECT {{tenant}}', /Unknown placeholder/],
    [
      'an unterminated placeholder',
      'SELECT * FROM {{tables.orders WHERE 1=1',
      /Malformed placeholder/,
    ],
    ['a single closing brace', 'SELECT * FROM {{tables.orders}', /Malformed placeholder/],
    ['an empty table name', 'SELECT * FROM {{tables.}}', /Invalid table name/],
  ])('rejects %s', (_label, sql, message) => {
    expect(() => orders.expand(sql)).toThrow(message);
  });

  it.each([
    ['a quote', 'a"b'],
    ['a space', 'my table'],
    ['a leading digit', '1orders'],
    ['a dash', 'order-items'],
    ['64 bytes', 'a'.repeat(64)],
    ['a multibyte name over 63 bytes', 'é'.repeat(32)],
  ])('rejects a table name with %s', (_label, name) => {
    expect(() => orders.expand(`SELECT * FROM {{tables.${name}}}`)).toThrow(InvalidIdentifierError);
  });

  it('accepts a 63-byte name and reserved words', () => {
    const name = 'a'.repeat(63);
    expect(orders.table(name)).toBe(`"orders"."${name}"`);
    expect(orders.table('select')).toBe('"orders"."select"');
  });

  it('rejects an invalid schema when the manager is created', () => {
    expect(() => new SqlTemplate('bad schema')).toThrow(InvalidIdentifierError);
    expect(() => new SqlTemplate('x'.repeat(64))).toThrow(/longer than 63 bytes/);
  });

  it('parses a query once for every schema that shares the cache', () => {
    const cache = new TemplateCache();
    const sql =
      'SELECT * FROM {{tables.t}} JOIN {{tables.u}} USING (id) WHERE {{schema}} IS NOT NULL';
    const a = new SqlTemplate('a', cache);
    const b = new SqlTemplate('b', cache);
    expect(a.expand(sql)).toBe(
      'SELECT * FROM "a"."t" JOIN "a"."u" USING (id) WHERE "a" IS NOT NULL',
    );
    expect(b.expand(sql)).toBe(
      'SELECT * FROM "b"."t" JOIN "b"."u" USING (id) WHERE "b" IS NOT NULL',
    );
    expect(a.expand(sql)).toBe(a.expand(sql));
    expect(cache.size).toBe(1);
  });

  it('bounds the cache: evicted entries are re-expanded correctly', () => {
    const template = new SqlTemplate('s', new TemplateCache(2));
    const queries = [1, 2, 3].map((n) => `SELECT ${n} FROM {{tables.t${n}}}`);
    const expanded = queries.map((q) => template.expand(q));
    expect(queries.map((q) => template.expand(q))).toEqual(expanded);
    expect(expanded[0]).toBe('SELECT 1 FROM "s"."t1"');
  });
});
