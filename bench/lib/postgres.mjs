// The PostgreSQL server for a run: DATABASE_URL when set, otherwise an embedded server started
// through the library's own test harness (a free port, a temporary data directory).
import pg from 'pg';
import { createTestDatabase, startEmbeddedPostgres } from '../../dist/testing/index.js';

/** @returns {Promise<{ url: string, source: 'DATABASE_URL' | 'embedded', stop(): Promise<void> }>} */
export async function openServer(log) {
  if (process.env.DATABASE_URL) {
    log('using the server in DATABASE_URL');
    return { url: process.env.DATABASE_URL, source: 'DATABASE_URL', stop: async () => {} };
  }
  log('starting embedded PostgreSQL (set DATABASE_URL to use an existing server)…');
  const server = await startEmbeddedPostgres();
  log(`embedded PostgreSQL listening on 127.0.0.1:${server.port}`);
  return { url: server.url, source: 'embedded', stop: () => server.stop() };
}

/** Errors emitted by idle pooled clients (a server restart, a terminated backend). */
export const idleClientErrors = [];

/**
 * `new pg.Pool(config)` with an `error` listener: without one, an idle client whose backend
 * goes away crashes the process. Such errors are collected and fail the run.
 */
export function createPool(config) {
  const pool = new pg.Pool(config);
  pool.on('error', (err) =>
    idleClientErrors.push(`${config.application_name ?? 'pool'}: ${err.message}`),
  );
  // pg-pool's end() resolves once every client has been asked to end, while sockets are still
  // closing (and clients retired by maxUses may still be closing too). A suite that drops its
  // database right after would terminate those backends, and the clients would report it as an
  // error. So end() here also waits, within 5 s, until every client's connection has closed, as
  // the library's own shutdown does.
  const open = new Set();
  pool.on('connect', (client) => {
    open.add(client);
    client.once('end', () => open.delete(client));
  });
  const end = pool.end.bind(pool);
  pool.end = async () => {
    await end();
    let timer;
    const closed = Promise.all(
      [...open].map((client) => new Promise((done) => client.once('end', done))),
    );
    const late = new Promise((done) => {
      timer = setTimeout(done, 5_000);
      timer.unref();
    });
    await Promise.race([closed, late]).finally(() => clearTimeout(timer));
  };
  return pool;
}

/** A fresh database on `serverUrl`; `drop()` removes it (forcing off any leftover sessions). */
export function createDatabase(serverUrl, prefix) {
  return createTestDatabase({ serverUrl, prefix });
}

/** Runs `fn` on a one-off client and always closes it. */
export async function withClient(url, fn) {
  const client = new pg.Client({ connectionString: url, application_name: 'bench_admin' });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** `SELECT version()` and the connection limits of the server. */
export function serverInfo(url) {
  return withClient(url, async (client) => {
    const { rows } = await client.query(
      `SELECT version() AS version,
              current_setting('max_connections')::int AS max_connections,
              current_setting('superuser_reserved_connections')::int AS reserved,
              (SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'client backend') AS in_use`,
    );
    return rows[0];
  });
}
