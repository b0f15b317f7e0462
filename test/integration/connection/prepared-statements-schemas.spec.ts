import type pg from 'pg';
import { SchemaDb, type PreparedStatementOptions } from '../../../lib/index.js';
import { adminPool, useTestDatabase } from '../../support/database.js';

/**
 * Managed statements when one SQL template serves several schemas: each schema's expansion is a
 * text of its own, kept as one string and prepared under a name of its own, so a statement (or
 * an expansion) of one tenant is never run for another, through eviction and re-preparing.
 */
describe('managed prepared statements across schemas', () => {
  const database = useTestDatabase();
  const pools: pg.Pool[] = [];
  const SCHEMAS = ['pss_a', 'pss_b', 'pss_c'];
  // The schema comes late in the text: names and keys must depend on all of it.
  const LOOKUP =
    'SELECT id, owner, id * 2 AS twice, id * 3 AS thrice, owner || $2 AS tagged FROM {{tables.items}} WHERE id = $1';

  /** A root manager over a one-connection pool of its own, and a manager per schema. */
  function managers(options: PreparedStatementOptions) {
    const pool = adminPool(database.current.url, 1);
    pools.push(pool);
    const root = SchemaDb.create(pool, null, { preparedStatements: { enabled: true, ...options } });
    return { root, bySchema: new Map(SCHEMAS.map((s) => [s, root.withSchema(s)])) };
  }

  /** The texts the server holds prepared for the session of `db`'s one connection. */
  async function held(db: SchemaDb): Promise<string[]> {
    const rows = await db.fetchAll<{ schema: string }>(
      `SELECT substring(statement from 'FROM "([a-z_]+)"') AS schema
         FROM pg_prepared_statements WHERE NOT from_sql ORDER BY 1`,
    );
    return rows.map((r) => r.schema);
  }

  async function lookUp(db: SchemaDb, schema: string, id: number): Promise<void> {
    expect(await db.fetchOne(LOOKUP, [id, '!'])).toEqual({
      id,
      owner: schema,
      twice: id * 2,
      thrice: id * 3,
      tagged: `${schema}!`,
    });
  }

  beforeAll(async () => {
    const setupPool = adminPool(database.current.url, 1);
    pools.push(setupPool);
    const setup = SchemaDb.create(setupPool, null);
    for (const schema of SCHEMAS) {
      const db = setup.withSchema(schema);
      await db.execute('CREATE SCHEMA {{schema}}');
      await db.execute('CREATE TABLE {{tables.items}} (id int PRIMARY KEY, owner text NOT NULL)');
      await db.execute(`INSERT INTO {{tables.items}} SELECT g, $1 FROM generate_series(1, 5) g`, [
        schema,
      ]);
    }
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.end()));
  });

  it('prepares one statement per schema on a shared connection, each running its own schema', async () => {
    const { root, bySchema } = managers({ prepareThreshold: 1 });
    for (let round = 1; round <= 3; round++) {
      for (const [schema, db] of bySchema) await lookUp(db, schema, round);
    }
    // A manager made per call shares the same expansions and statements.
    await lookUp(root.withSchema('pss_b'), 'pss_b', 4);
    expect(root.statementStats).toMatchObject({ prepared: 3, hits: 7, misses: 3, statements: 3 });
    expect(await held(root)).toEqual(SCHEMAS);
  });

  it('prepares a text again under its own name after eviction, and closes what it evicts', async () => {
    const { root, bySchema } = managers({ prepareThreshold: 1, maxPerConnection: 2 });
    const order = ['pss_a', 'pss_b', 'pss_c', 'pss_a', 'pss_c', 'pss_b', 'pss_b', 'pss_a'];
    let id = 0;
    for (const schema of order) await lookUp(bySchema.get(schema)!, schema, (id++ % 5) + 1);
    // a b | c evicts a | a evicts b | c hits | b evicts a | b hits | a evicts c
    expect(root.statementStats).toMatchObject({
      hits: 2,
      prepared: 6,
      evictions: 4,
      statements: 2,
    });
    expect(await held(root)).toEqual(['pss_a', 'pss_b']);
  });

  it('after DEALLOCATE ALL, re-prepares a text and then reuses and evicts it like any other', async () => {
    const { root, bySchema } = managers({ prepareThreshold: 1, maxPerConnection: 2 });
    await lookUp(bySchema.get('pss_a')!, 'pss_a', 1);
    await lookUp(bySchema.get('pss_b')!, 'pss_b', 1);
    await root.execute('DEALLOCATE ALL');
    await lookUp(bySchema.get('pss_a')!, 'pss_a', 2); // stale: re-prepared and run again
    await lookUp(bySchema.get('pss_a')!, 'pss_a', 3); // a hit on the new statement
    expect(root.statementStats).toMatchObject({ reprepared: 1, statements: 2, evictions: 0 });
    await lookUp(bySchema.get('pss_c')!, 'pss_c', 1); // evicts b, the least recently used
    await lookUp(bySchema.get('pss_b')!, 'pss_b', 2); // evicts a
    expect(root.statementStats).toMatchObject({ statements: 2, evictions: 2 });
    expect(await held(root)).toEqual(['pss_b', 'pss_c']);
    await lookUp(bySchema.get('pss_c')!, 'pss_c', 2);
    // a, b, then a stale hit and its re-run, a hit, c, b, and c's hit.
    expect(root.statementStats).toMatchObject({ hits: 3, misses: 5 });
  });
});
