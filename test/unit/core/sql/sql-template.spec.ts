import { InvalidIdentifierError, TemplateError } from '../../../../lib/shared/errors.js';
import { SqlTemplate, SqlTemplateCache } from '../../../../lib/core/sql/sql-template.js';

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
    ['a space', 'my table'],
    ['a leading digit', '1orders'],
    ['a dash', 'order-items'],
    ['64 bytes', 'a'.repeat(64)],
    ['a multibyte name over 63 bytes', 'é'.repeat(32)],
  ])('rejects a table name with %s', (_label, name) => {
    expect(() => orders.expand(`SELECT * FROM {{tables.${name}}}`)).toThrow(InvalidIdentifierError);
  });

  it('rejects a table name with a quote (the quote starts a quoted identifier)', () => {
    expect(() => orders.expand('SELECT * FROM {{tables.a"b}}')).toThrow(TemplateError);
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
    const cache = new SqlTemplateCache();
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
    const template = new SqlTemplate('s', new SqlTemplateCache(2));
    const queries = [1, 2, 3].map((n) => `SELECT ${n} FROM {{tables.t${n}}}`);
    const expanded = queries.map((q) => template.expand(q));
    expect(queries.map((q) => template.expand(q))).toEqual(expanded);
    expect(expanded[0]).toBe('SELECT 1 FROM "s"."t1"');
  });

  describe('follows SQL lexical rules', () => {
    it.each([
      ['a string literal', "INSERT INTO t VALUES ('Hello {{first_name}}')"],
      ['a placeholder-looking literal', "SELECT '{{tables.users}}'"],
      ['an E string with an escaped quote', "SELECT E'it\\'s {{x}}', E'\\\\', '{{y}}'"],
      ['a lower-case e string with an escaped quote', "SELECT e'it\\'s {{x}}', '{{y}}'"],
      ['doubled quotes', "SELECT 'it''s {{x}}'"],
      ['a quoted identifier', 'SELECT 1 AS "{{tables.x}}"'],
      ['a line comment', 'SELECT 1 -- TODO {{ later }}'],
      ['a block comment', 'SELECT /* {{x}} */ 1'],
      ['a nested block comment', "SELECT /* a /* {{x}} */ still '{{y}}' */ 1"],
    ])('leaves %s as written', (_label, sql) => {
      expect(orders.expand(sql)).toBe(sql);
    });

    it('expands code around literals and comments', () => {
      expect(
        orders.expand(
          "INSERT INTO {{tables.t}} VALUES ('{{tables.t}}', E'\\'{{x}}') -- {{tables.t}}\n RETURNING {{schema}}",
        ),
      ).toBe(
        'INSERT INTO "orders"."t" VALUES (\'{{tables.t}}\', E\'\\\'{{x}}\') -- {{tables.t}}\n RETURNING "orders"',
      );
    });

    it('expands inside dollar-quoted bodies, which are code', () => {
      const sql =
        'CREATE FUNCTION {{tables.f}}() RETURNS bigint LANGUAGE sql AS $fn$ SELECT count(*) FROM {{tables.users}} $fn$';
      expect(orders.expand(sql)).toBe(
        'CREATE FUNCTION "orders"."f"() RETURNS bigint LANGUAGE sql AS $fn$ SELECT count(*) FROM "orders"."users" $fn$',
      );
      expect(orders.expand('DO $$ BEGIN PERFORM 1 FROM {{tables.x}}; END $$')).toBe(
        'DO $$ BEGIN PERFORM 1 FROM "orders"."x"; END $$',
      );
    });

    it('treats $1 as a parameter and a$b$ as a name, not as dollar quotes', () => {
      expect(orders.expand("SELECT $1, a$b$ FROM {{tables.t}} WHERE x = '{{y}}'")).toBe(
        'SELECT $1, a$b$ FROM "orders"."t" WHERE x = \'{{y}}\'',
      );
    });

    it('writes \\{{ for a literal {{ in code', () => {
      expect(orders.expand('SELECT \\{{tables.t}} FROM {{tables.t}}')).toBe(
        'SELECT {{tables.t}} FROM "orders"."t"',
      );
      expect(orders.expand('SELECT \\{{ 1')).toBe('SELECT {{ 1');
    });

    it('still refuses malformed placeholders in code and in bodies', () => {
      expect(() => orders.expand('SELECT * FROM {{tables.t')).toThrow(/Malformed placeholder/);
      expect(() => orders.expand('DO $$ SELECT {{tables.t $$')).toThrow(/Malformed placeholder/);
      expect(() => orders.expand('DO $$ SELECT {{nope}} $$')).toThrow(/Unknown placeholder/);
    });

    it('refuses a schema whose name could close a dollar-quoted body', () => {
      const sneaky = new SqlTemplate('tenant_x$fn$');
      const body =
        'CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $fn$ SELECT 1 FROM {{tables.t}} $fn$';
      expect(() => sneaky.expand(body)).toThrow(TemplateError);
      expect(() => sneaky.expand(body)).toThrow(/dollar-quoted body/);
      // Outside bodies the quoted name is harmless.
      expect(sneaky.expand('SELECT * FROM {{tables.t}}')).toBe('SELECT * FROM "tenant_x$fn$"."t"');
      // One "$" cannot form a tag.
      expect(new SqlTemplate('a$b').expand('DO $$ SELECT {{schema}} $$')).toBe(
        'DO $$ SELECT "a$b" $$',
      );
    });
  });
});
