// A pooled schema for the adaptation specs: a managed role of the file's own, migration files
// applied one transaction each with the adaptation after each (as the migration runner does),
// and transactions run as the role for one tenant.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import {
  adaptPooledSchema,
  type PooledAdaptationReport,
} from '../../lib/catalog/pooled-adaptation.js';
import { SqlTemplate } from '../../lib/core/sql/sql-template.js';
import { historyDdl, historyTable } from '../../lib/migrations/migration-history.js';
import { adminPool, useTestDatabase } from './database.js';

/** A query on the transaction's connection. */
export type Query = (sql: string, values?: unknown[]) => Promise<pg.QueryResult>;

/** What {@link usePooledDatabase} gives a spec. */
export interface PooledDatabase {
  readonly admin: pg.Pool;
  readonly url: string;
  /** The managed role (NOLOGIN NOBYPASSRLS), unique per test file: roles are cluster-wide. */
  readonly role: string;
  /** Applies each file in a transaction of its own and adapts after it; the last report. */
  readonly apply: (schema: string, ...files: string[]) => Promise<PooledAdaptationReport>;
  /** Runs `fn` in a transaction as the role, for `tenant` (`null`: none set); commits unless it throws. */
  readonly asTenant: <T>(
    tenant: string | null,
    fn: (q: Query) => Promise<T>,
    client?: pg.ClientBase,
  ) => Promise<T>;
}

/** A database of the file's own with a managed role, both dropped in afterAll. */
export function usePooledDatabase(): PooledDatabase {
  const role = `pooled_adapt_${randomBytes(4).toString('hex')}`;
  let admin: pg.Pool;
  // Declared before the database's own hook, so it runs while the database still exists.
  afterAll(async () => {
    await admin.query(`DROP OWNED BY "${role}"`);
    await admin.query(`DROP ROLE "${role}"`);
    await admin.end();
  });
  const database = useTestDatabase();
  beforeAll(async () => {
    admin = adminPool(database.current.url, 4);
    await admin.query(`CREATE ROLE "${role}" NOLOGIN NOBYPASSRLS`);
  });

  const pooled: PooledDatabase = {
    get admin() {
      return admin;
    },
    get url() {
      return database.current.url;
    },
    role,
    apply: async (schema, ...files) => {
      const client = await admin.connect();
      let report!: PooledAdaptationReport;
      try {
        // The runner's history table, with a row: never adapted, never granted.
        await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"; ${historyDdl(schema)}`);
        for (const file of files) {
          await client.query('BEGIN');
          try {
            await client.query(new SqlTemplate(schema).expand(file));
            report = await adaptPooledSchema(client, schema, { column: 'tenant_id', role });
            await client.query(
              `INSERT INTO ${historyTable(schema)} (version, name, checksum, duration_ms)
               SELECT coalesce(max(version), 0) + 1, 'file', '', 0 FROM ${historyTable(schema)}`,
            );
            await client.query('COMMIT');
          } catch (error) {
            await client.query('ROLLBACK');
            throw error;
          }
        }
      } finally {
        client.release();
      }
      return report;
    },
    asTenant: async (tenant, fn, client) => {
      const c = client ?? (await admin.connect());
      try {
        await c.query('BEGIN');
        await c.query(`SELECT set_config('role', $1, true)`, [role]);
        if (tenant !== null) {
          await c.query(`SELECT set_config('tenancy.tenant_id', $1, true)`, [tenant]);
        }
        try {
          const out = await fn((sql, values) => c.query(sql, values));
          await c.query('COMMIT');
          return out;
        } catch (error) {
          await c.query('ROLLBACK');
          throw error;
        }
      } finally {
        if (client === undefined) (c as pg.PoolClient).release();
      }
    },
  };
  return pooled;
}
