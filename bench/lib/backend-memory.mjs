// Server memory of a pool's own connections, read on each of them (pg_backend_memory_contexts
// shows only the backend that queries it; PostgreSQL 14+).

// relcache: the catalog and relation caches (CacheMemoryContext and each index's 'index info'),
// which grow with every table a backend touches; plans: prepared statements (CachedPlanSource,
// CachedPlanQuery and generic CachedPlan contexts).
const MEMORY_SQL = `SELECT
    (SELECT sum(total_bytes) FROM pg_backend_memory_contexts)::float8 AS total,
    (SELECT sum(total_bytes) FROM pg_backend_memory_contexts
      WHERE name IN ('CacheMemoryContext', 'index info'))::float8 AS relcache,
    (SELECT sum(total_bytes) FROM pg_backend_memory_contexts
      WHERE name LIKE 'CachedPlan%')::float8 AS plans,
    (SELECT count(*) FROM pg_prepared_statements)::int AS statements,
    pg_backend_pid() AS pid`;

/** `true` when the server has pg_backend_memory_contexts. */
export async function canReadMemory(pool) {
  const { rows } = await pool.query(
    "SELECT to_regclass('pg_catalog.pg_backend_memory_contexts') IS NOT NULL AS ok",
  );
  return rows[0].ok;
}

/**
 * Checks out `count` connections at once (so each reading comes from a different backend) and
 * returns the mean per connection, in MiB, with the statement count. Parameterless SQL: never
 * prepared, so the reading does not change what it reads.
 */
export async function memoryPerConnection(pool, count) {
  const rows = await readConnections(pool, count);
  const mean = (key) => rows.reduce((sum, r) => sum + Number(r[key] ?? 0), 0) / rows.length;
  return {
    connections: rows.length,
    totalMiB: mib(mean('total')),
    relcacheMiB: mib(mean('relcache')),
    plansMiB: mib(mean('plans')),
    statements: Math.round(mean('statements')),
  };
}

/**
 * As {@link memoryPerConnection}, one entry per connection: its backend's `pid`, and its
 * total, relcache and plan memory in MiB with its statement count.
 */
export async function memoryByConnection(pool, count) {
  const rows = await readConnections(pool, count);
  return rows.map((r) => ({
    pid: r.pid,
    totalMiB: mib(Number(r.total ?? 0)),
    relcacheMiB: mib(Number(r.relcache ?? 0)),
    plansMiB: mib(Number(r.plans ?? 0)),
    statements: r.statements,
  }));
}

const mib = (bytes) => Math.round((bytes / 1048576) * 10) / 10;

/** The raw readings of `count` connections checked out at once. */
async function readConnections(pool, count) {
  const clients = [];
  try {
    for (let i = 0; i < count; i++) clients.push(await pool.connect());
    const rows = [];
    for (const c of clients) rows.push((await c.query(MEMORY_SQL)).rows[0]);
    return rows;
  } finally {
    for (const c of clients) c.release();
  }
}
