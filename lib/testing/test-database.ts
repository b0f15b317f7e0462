import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { quoteIdentifier } from '../shared/identifiers.js';
import { dropCitusDatabase, findCitusCluster, spreadCitusDatabase } from './citus-test-database.js';
import { startEmbeddedPostgres, type EmbeddedPostgresServer } from './embedded/embedded-server.js';

/** A fresh, empty database for one test file (or one test). */
export interface TestDatabase {
  /** Connection URL of the new database: pass it as `connection` to `DatabaseModule.forRoot`. */
  readonly url: string;
  /** The database's name. */
  readonly name: string;
  /** Drops the database (terminating connections still open to it) and stops any server started for it. */
  drop(): Promise<void>;
}

/** Options of {@link createTestDatabase}. */
export interface TestDatabaseOptions {
  /**
   * URL of a server where the test may create databases (a superuser or a role with
   * `CREATEDB`). Default: `DATABASE_URL`; when that is unset too, a private embedded PostgreSQL
   * is started and `drop()` stops it.
   */
  serverUrl?: string;
  /** Prefix of the generated database name. Default: `'test'`. */
  prefix?: string;
}

/**
 * Creates a uniquely named, empty database so that test files can run in parallel without
 * seeing each other's schemas.
 *
 * On a Citus coordinator (the server URL's database has the `citus` extension and workers
 * registered), the database is created on every node with the extension and the nodes
 * registered, so the code under test runs distributed as it does in production.
 *
 * For many files, start one server for the whole run (`startEmbeddedPostgres()` in Jest's
 * `globalSetup`, exporting its `url` as `DATABASE_URL`) and call this in each file.
 *
 * @example
 * let db: TestDatabase;
 * beforeAll(async () => { db = await createTestDatabase(); });
 * afterAll(() => db.drop());
 * // DatabaseModule.forRoot({ connection: db.url })
 */
export async function createTestDatabase(options: TestDatabaseOptions = {}): Promise<TestDatabase> {
  let server: EmbeddedPostgresServer | undefined;
  let serverUrl = options.serverUrl ?? process.env.DATABASE_URL;
  if (!serverUrl) {
    server = await startEmbeddedPostgres();
    serverUrl = server.url;
  }
  const name = `${options.prefix ?? 'test'}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  let cluster: Awaited<ReturnType<typeof findCitusCluster>>;
  try {
    cluster = server ? undefined : await findCitusCluster(serverUrl, withAdminClient);
    await withAdminClient(serverUrl, (client) =>
      client.query(`CREATE DATABASE ${quoteIdentifier(name)}`),
    );
    if (cluster) await spreadCitusDatabase(serverUrl, cluster, name, withAdminClient);
  } catch (err) {
    if (cluster) {
      const cleanUp = serverUrl;
      await withAdminClient(cleanUp, (client) =>
        client.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(name)} WITH (FORCE)`),
      )
        .then(() => dropCitusDatabase(cleanUp, cluster!, name, withAdminClient))
        .catch(() => undefined);
    }
    await server?.stop();
    throw err;
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  let dropped: Promise<void> | undefined;
  return {
    url: url.toString(),
    name,
    drop: () =>
      (dropped ??= (async () => {
        try {
          await withAdminClient(serverUrl, (client) =>
            client.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(name)} WITH (FORCE)`),
          );
          if (cluster) await dropCitusDatabase(serverUrl, cluster, name, withAdminClient);
        } finally {
          await server?.stop();
        }
      })()),
  };
}

async function withAdminClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
