import { schemaDependentStatement } from '../../../lib/migrations/schema-dependence.js';

describe('schemaDependentStatement', () => {
  it.each([
    [
      "DO $$ BEGIN IF '{{schema}}' = '\"tenant_x\"' THEN RAISE EXCEPTION 'no'; END IF; END $$;",
      "a DO that uses the schema's name",
    ],
    [
      'do language plpgsql $fn$ BEGIN INSERT INTO {{tables.a}} VALUES (1); END $fn$;',
      "a DO that uses the schema's name",
    ],
    ['CALL {{schema}}.seed();', "a CALL that uses the schema's name"],
    ['SELECT {{schema}}.seed();', 'SELECT calling a function of the schema'],
    ['EXPLAIN ANALYZE SELECT {{schema}}.seed();', 'EXPLAIN calling a function of the schema'],
    [
      'INSERT INTO {{tables.a}} (code) SELECT {{ schema }} . code ( ) ;',
      'INSERT calling a function of the schema',
    ],
    [
      'update {{tables.a}} SET x = {{schema}}."Next Value"(1);',
      'UPDATE calling a function of the schema',
    ],
    [
      'WITH n AS (SELECT {{schema}}.f() AS v) INSERT INTO {{tables.a}} SELECT v FROM n;',
      'WITH calling a function of the schema',
    ],
    [
      'ALTER TABLE {{tables.a}} ADD COLUMN code text DEFAULT {{schema}}.make_code();',
      'ALTER TABLE calling a function of the schema',
    ],
    [
      'CREATE TABLE {{tables.b}} AS SELECT {{schema}}.f() AS v;',
      'CREATE TABLE … AS calling a function of the schema',
    ],
  ])('finds %s', (sql, reason) => {
    expect(schemaDependentStatement(`CREATE TABLE {{tables.t}} (id int);\n${sql}\n`)).toEqual({
      line: 2,
      reason,
    });
  });

  it.each([
    // Definitions run nothing now; their code runs later, in the tenant's own schema.
    'CREATE FUNCTION {{schema}}.f() RETURNS int LANGUAGE sql AS $$ SELECT {{schema}}.g() $$;',
    'CREATE VIEW {{schema}}.v AS SELECT {{schema}}.f() AS x;',
    'CREATE TABLE {{tables.a}} (code text DEFAULT {{schema}}.make_code());',
    'CREATE INDEX a_code ON {{tables.a}} ({{schema}}.norm(code));',
    'GRANT EXECUTE ON FUNCTION {{schema}}.f() TO PUBLIC;',
    'COMMENT ON FUNCTION {{schema}}.f() IS $$x$$;',
    'ALTER FUNCTION {{schema}}.f() SET search_path = {{schema}};',
    // Rows of the schema's own tables, equal in every schema the same files built.
    "INSERT INTO {{tables.a}} (k, v) VALUES ('plan', 'free');",
    'INSERT INTO {{tables.a}} SELECT id FROM {{tables.b}} WHERE id > 1;',
    'UPDATE {{tables.a}} SET v = lower(v);',
    'SELECT setval(tableoid, 7, false) FROM {{schema}}.invoice_no;',
    // A DO block that does not reach the schema, and placeholders that are never expanded.
    "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app') THEN CREATE ROLE app; END IF; END $$;",
    "SELECT '{{schema}}.f()';",
    '-- SELECT {{schema}}.f();\nSELECT 1;',
    'SELECT public.f(); /* {{schema}}.g() */',
  ])('leaves alone %s', (sql) => {
    expect(schemaDependentStatement(sql)).toBeUndefined();
  });
});
