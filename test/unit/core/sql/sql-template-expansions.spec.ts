import { SqlTemplateError } from '../../../../lib/shared/errors.js';
import { SqlTemplate, SqlTemplateCache } from '../../../../lib/core/sql/sql-template.js';

/** The expansions an SQL template cache keeps per schema, so a hot query is not rebuilt. */
describe('SqlTemplateCache expansions', () => {
  const SQL = 'SELECT * FROM {{tables.orders}} JOIN {{schema}}.lines USING (id) WHERE id = $1';
  const expected = (schema: string) =>
    `SELECT * FROM "${schema}"."orders" JOIN "${schema}".lines USING (id) WHERE id = $1`;

  it('keeps one expansion per schema and serves each schema its own, in any order', () => {
    const cache = new SqlTemplateCache();
    const schemas = ['a', 'b', 'c'];
    for (let round = 0; round < 3; round++) {
      for (const schema of round === 1 ? [...schemas].reverse() : schemas) {
        expect(new SqlTemplate(schema, cache).expand(SQL)).toBe(expected(schema));
      }
    }
    expect(cache.expansions).toBe(3);
    expect(new SqlTemplate(null, cache).expand('SELECT 1 FROM {{tables.t}} WHERE x = $1')).toBe(
      'SELECT 1 FROM "t" WHERE x = $1',
    );
    expect(cache.expansions).toBe(4);
  });

  it('keeps nothing for SQL without placeholders, or for a query that fails to expand', () => {
    const cache = new SqlTemplateCache();
    new SqlTemplate('a', cache).expand('SELECT 1');
    const unqualified = new SqlTemplate(null, cache);
    for (let i = 0; i < 2; i++) {
      expect(() => unqualified.expand('SELECT * FROM {{schema}}.t')).toThrow(SqlTemplateError);
    }
    const dollar = new SqlTemplate('t$x$', cache);
    const body = 'CREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1 FROM {{tables.t}} $fn$';
    expect(new SqlTemplate('a', cache).expand(body)).toContain('"a"."t"');
    expect(() => dollar.expand(body)).toThrow(/dollar-quote/);
    expect(() => dollar.expand(body)).toThrow(/dollar-quote/);
    expect(cache.expansions).toBe(1);
  });

  it('stays within its budget of characters, and goes on keeping after evicting', () => {
    const each = expected('tenant_0000').length + 64;
    const cache = new SqlTemplateCache(2_000, each * 10);
    for (let i = 0; i < 100; i++) {
      const schema = `tenant_${String(i).padStart(4, '0')}`;
      expect(new SqlTemplate(schema, cache).expand(SQL)).toBe(expected(schema));
      expect(cache.expansions).toBeLessThanOrEqual(10);
    }
    expect(cache.expansions).toBe(10);
    // The newest are the ones kept: asking them again adds nothing.
    new SqlTemplate('tenant_0099', cache).expand(SQL);
    expect(cache.expansions).toBe(10);
  });

  it('gives back the budget of an evicted entry', () => {
    const each = expected('s1').length + 64;
    const cache = new SqlTemplateCache(2, (each + 12) * 4);
    const sql = (n: number) => `${SQL} AND n = ${n}`;
    for (let n = 0; n < 20; n++) {
      for (const schema of ['s1', 's2']) new SqlTemplate(schema, cache).expand(sql(n));
      // Two entries of two expansions each fit; the budget of the ones evicted is free again.
      expect(cache.expansions).toBe(n === 0 ? 2 : 4);
    }
  });

  it('rebuilds, rather than keeps, very long expansions (migration files)', () => {
    const cache = new SqlTemplateCache();
    const long = `${'SELECT 1 FROM {{tables.t}};\n'.repeat(1_000)}`;
    expect(new SqlTemplate('a', cache).expand(long)).toContain('"a"."t"');
    expect(cache.expansions).toBe(0);
  });
});
