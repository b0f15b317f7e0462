import { SqlTemplate, SqlTemplateCache } from '../../../../lib/core/sql/sql-template.js';
import { InvalidIdentifierError, TemplateError } from '../../../../lib/shared/errors.js';

// Input SQL → expanded SQL or the error, at the edges the main template spec does not reach.
describe('SqlTemplate edge cases', () => {
  const orders = new SqlTemplate('orders');

  it('returns SQL without any placeholder unchanged', () => {
    expect(orders.expand('SELECT 1')).toBe('SELECT 1');
    expect(new SqlTemplate(null).expand('SELECT $1::int')).toBe('SELECT $1::int');
  });

  it('rejects an unterminated placeholder written with spaces', () => {
    expect(() => orders.expand('SELECT * FROM {{ tables.orders WHERE id = 1')).toThrow(
      /Malformed placeholder/,
    );
    expect(() => orders.expand('SELECT {{  schema')).toThrow(TemplateError);
  });

  it('quotes only a short excerpt of the SQL around a malformed placeholder', () => {
    const tail = 'x = 1 AND '.repeat(6) + 'FAR_AWAY' + ' AND y = 2'.repeat(10);
    const error = (() => {
      try {
        orders.expand(`SELECT * FROM {{tables.orders WHERE ${tail}`);
      } catch (err) {
        return err as Error;
      }
      throw new Error('expected a TemplateError');
    })();
    expect(error).toBeInstanceOf(TemplateError);
    expect(error.message).toContain('{{tables.orders WHERE');
    expect(error.message).not.toContain('FAR_AWAY');
  });

  it('rejects SQL that is not a string', () => {
    expect(() => orders.expand(42 as never)).toThrow(TemplateError);
    expect(() => orders.expand(42 as never)).toThrow(/SQL must be a string, received number/);
  });

  it('says how to fix {{schema}} on a manager without a schema', () => {
    expect(() => new SqlTemplate(null).expand('SELECT {{schema}}')).toThrow(
      /\{\{schema\}\} was used on a manager that has no schema/,
    );
  });

  it('names the schema when it refuses one', () => {
    expect(() => new SqlTemplate('bad schema')).toThrow(InvalidIdentifierError);
    expect(() => new SqlTemplate('bad schema')).toThrow(/^Invalid schema name "bad schema"/);
  });

  it('keeps at most maxSize parsed queries', () => {
    const cache = new SqlTemplateCache(2);
    const template = new SqlTemplate('s', cache);
    template.expand('SELECT 1 FROM {{tables.a}}');
    template.expand('SELECT 2 FROM {{tables.b}}');
    expect(cache.size).toBe(2);
    template.expand('SELECT 3 FROM {{tables.c}}');
    expect(cache.size).toBe(2);
    expect(template.expand('SELECT 1 FROM {{tables.a}}')).toBe('SELECT 1 FROM "s"."a"');
  });
});
