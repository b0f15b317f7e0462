import { PooledAdaptationError } from '../../../lib/index.js';
import { usePooledDatabase } from '../../support/pooled.js';

// Each file below makes one thing the pooled tier cannot share safely: the adaptation refuses it
// by name, inside the file's transaction, so nothing of the file stays.
describe('adaptPooledSchema refusals', () => {
  const db = usePooledDatabase();
  const { apply } = db;
  let counter = 0;
  const nextSchema = () => `pooled_refused_${++counter}`;

  beforeAll(() => db.admin.query('CREATE SCHEMA accounts'));

  const refusals: [string, string, string, string][] = [
    [
      'rows',
      'a table that holds rows without a tenant',
      'CREATE TABLE {{tables.seeded}} (id int); INSERT INTO {{tables.seeded}} VALUES (1);',
      'seeded',
    ],
    [
      'column',
      'an own column of the tenant name',
      'CREATE TABLE {{tables.owned}} (tenant_id int);',
      'owned.tenant_id',
    ],
    [
      'column',
      'an own nullable text column of the tenant name',
      'CREATE TABLE {{tables.owned}} (tenant_id text);',
      'owned.tenant_id',
    ],
    [
      'column',
      "an app's own tenant column, text NOT NULL, without the library's default",
      'CREATE TABLE {{tables.owned}} (id int, tenant_id text NOT NULL);',
      'owned.tenant_id',
    ],
    [
      'column',
      'a generated column of the tenant name',
      "CREATE TABLE {{tables.owned}} (n int, tenant_id text GENERATED ALWAYS AS ('x') STORED);",
      'owned.tenant_id',
    ],
    [
      'relation',
      'a partitioned table',
      'CREATE TABLE {{tables.events}} (at date) PARTITION BY RANGE (at);',
      'events',
    ],
    [
      'relation',
      'a materialized view',
      'CREATE MATERIALIZED VIEW {{tables.totals}} AS SELECT 1 AS n;',
      'totals',
    ],
    [
      'function',
      'a SECURITY DEFINER function',
      'CREATE FUNCTION {{schema}}.peek() RETURNS int LANGUAGE sql SECURITY DEFINER AS $$ SELECT 1 $$;',
      'peek()',
    ],
    [
      'constraint',
      'an exclusion constraint without the tenant column',
      'CREATE TABLE {{tables.slots}} (n int, EXCLUDE USING btree (n WITH =));',
      'slots.slots_n_excl',
    ],
    [
      'constraint',
      'a foreign key with ON UPDATE SET NULL',
      `CREATE TABLE {{tables.p}} (id int PRIMARY KEY);
       CREATE TABLE {{tables.c}} (p_id int REFERENCES {{tables.p}} ON UPDATE SET NULL);`,
      'c.c_p_id_fkey',
    ],
    [
      'policy',
      'a permissive policy of the file',
      'CREATE TABLE {{tables.open}} (n int); CREATE POLICY everyone ON {{tables.open}} USING (true);',
      'open.everyone',
    ],
    [
      'policy',
      "a policy under the library's name with another definition",
      'CREATE TABLE {{tables.open}} (n int); CREATE POLICY tenant_isolation ON {{tables.open}} AS RESTRICTIVE USING (true);',
      'open.tenant_isolation',
    ],
    [
      'index',
      'a unique expression index with its own collation',
      'CREATE TABLE {{tables.names}} (n text); CREATE UNIQUE INDEX names_c ON {{tables.names}} ((lower(n)) COLLATE "C");',
      'names.names_c',
    ],
  ];
  it.each(refusals)(
    'refuses (%s) %s, naming it, and leaves nothing of the file',
    async (refusal, _what, sql, object) => {
      const schema = nextSchema();
      const error = await apply(schema, sql).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PooledAdaptationError);
      expect(error).toMatchObject({ schema, object, refusal });
      expect((error as Error).message).toContain(object);
      const { rows } = await db.admin.query(
        `SELECT count(*)::int AS n FROM pg_class
          WHERE relnamespace = $1::regnamespace AND relname NOT LIKE 'schema_migrations%'`,
        [schema],
      );
      expect(rows[0].n).toBe(0);
    },
  );

  it('refuses a later foreign key that pairs the tenant column with another column', async () => {
    const schema = nextSchema();
    await apply(
      schema,
      `CREATE TABLE {{tables.p}} (id int PRIMARY KEY, code text UNIQUE);
       CREATE TABLE {{tables.c}} (ref text);`,
    );
    // Valid SQL against the adapted tables: p has UNIQUE (tenant_id, code) now.
    await expect(
      apply(
        schema,
        'ALTER TABLE {{tables.c}} ADD CONSTRAINT c_bad FOREIGN KEY (tenant_id, ref) REFERENCES {{tables.p}} (code, tenant_id);',
      ),
    ).rejects.toMatchObject({ refusal: 'constraint', object: 'c.c_bad' });
  });

  it('refuses a foreign key from a shared table into the pooled schema', async () => {
    const schema = nextSchema();
    await apply(schema, 'CREATE TABLE {{tables.items}} (id int PRIMARY KEY);');
    await db.admin.query(
      `CREATE TABLE accounts.favourites (item_id int, tenant_id text, FOREIGN KEY (tenant_id, item_id) REFERENCES "${schema}".items (tenant_id, id))`,
    );
    try {
      await expect(apply(schema, 'SELECT 1')).rejects.toMatchObject({
        refusal: 'reference',
        object: 'accounts.favourites.favourites_tenant_id_item_id_fkey',
      });
    } finally {
      await db.admin.query('DROP TABLE accounts.favourites');
    }
  });
});
