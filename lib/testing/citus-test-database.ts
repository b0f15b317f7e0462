import pg from 'pg';
import { quoteIdentifier } from '../shared/identifiers.js';

const DROP_ATTEMPTS = 10;

/** A node of a Citus cluster, as `pg_dist_node` names it. */
interface CitusNode {
  readonly nodename: string;
  readonly nodeport: number;
}

/** The cluster behind a coordinator URL, or `undefined` when it is not a Citus coordinator. */
interface CitusCluster {
  readonly coordinator: CitusNode;
  readonly workers: readonly CitusNode[];
}

/**
 * Whether `serverUrl` reaches a Citus coordinator with workers; if so, its nodes. One query
 * on plain PostgreSQL.
 */
export async function findCitusCluster(
  serverUrl: string,
  withClient: <T>(url: string, fn: (client: pg.Client) => Promise<T>) => Promise<T>,
): Promise<CitusCluster | undefined> {
  return withClient(serverUrl, async (client) => {
    const ext = await client.query("SELECT 1 FROM pg_extension WHERE extname = 'citus'");
    if (ext.rowCount === 0) return undefined;
    const { rows } = await client.query<CitusNode & { groupid: number }>(
      `SELECT nodename, nodeport, groupid FROM pg_catalog.pg_dist_node
        WHERE noderole = 'primary' AND isactive ORDER BY groupid`,
    );
    const coordinator = rows.find((r) => r.groupid === 0);
    const workers = rows.filter((r) => r.groupid !== 0);
    return coordinator && workers.length > 0 ? { coordinator, workers } : undefined;
  });
}

function nodeUrl(serverUrl: string, node: CitusNode, database?: string): string {
  const url = new URL(serverUrl);
  url.hostname = node.nodename;
  url.port = String(node.nodeport);
  if (database !== undefined) url.pathname = `/${database}`;
  return url.toString();
}

/**
 * The session advisory lock, taken in the server URL's own database, under which test databases
 * are spread over the cluster one at a time. `citus_add_node` copies the cluster's roles to the
 * worker (`worker_create_or_alter_role`, an `ALTER ROLE` in the worker's shared catalog): two at
 * once, for two new databases, fail one with "tuple concurrently updated", which the coordinator
 * reports as "failure on connection marked as essential". Jest's workers start their first test
 * files together, so without the lock a run on Citus failed now and then.
 */
export const CITUS_SPREAD_LOCK = 'nestjs-pg-tenancy:spread-citus-test-database';

/**
 * Makes database `name` (just created on the coordinator) a Citus database of its own: the same
 * database on every worker, the extension on every node, the nodes registered. Citus keeps its
 * metadata per database, so a fresh database needs all of it. One database at a time per
 * cluster ({@link CITUS_SPREAD_LOCK}).
 */
export async function spreadCitusDatabase(
  serverUrl: string,
  cluster: CitusCluster,
  name: string,
  withClient: <T>(url: string, fn: (client: pg.Client) => Promise<T>) => Promise<T>,
): Promise<void> {
  await withClient(serverUrl, async (lock) => {
    // Released with the session, also when a step below fails.
    await lock.query('SELECT pg_advisory_lock(hashtext($1))', [CITUS_SPREAD_LOCK]);
    await spread(serverUrl, cluster, name, withClient);
  });
}

async function spread(
  serverUrl: string,
  cluster: CitusCluster,
  name: string,
  withClient: <T>(url: string, fn: (client: pg.Client) => Promise<T>) => Promise<T>,
): Promise<void> {
  const db = quoteIdentifier(name);
  for (const worker of cluster.workers) {
    await withClient(nodeUrl(serverUrl, worker), (c) => c.query(`CREATE DATABASE ${db}`));
    await withClient(nodeUrl(serverUrl, worker, name), (c) =>
      c.query('CREATE EXTENSION IF NOT EXISTS citus'),
    );
  }
  await withClient(nodeUrl(serverUrl, cluster.coordinator, name), async (c) => {
    await c.query('CREATE EXTENSION IF NOT EXISTS citus');
    await c.query('SELECT citus_set_coordinator_host($1, $2)', [
      cluster.coordinator.nodename,
      cluster.coordinator.nodeport,
    ]);
    for (const worker of cluster.workers) {
      await c.query('SELECT citus_add_node($1, $2)', [worker.nodename, worker.nodeport]);
    }
  });
}

/** Drops database `name` from every worker (the coordinator's copy is dropped by the caller). */
export async function dropCitusDatabase(
  serverUrl: string,
  cluster: CitusCluster,
  name: string,
  withClient: <T>(url: string, fn: (client: pg.Client) => Promise<T>) => Promise<T>,
): Promise<void> {
  for (const worker of cluster.workers) {
    await withClient(nodeUrl(serverUrl, worker), async (c) => {
      // A worker's Citus maintenance daemon (a background worker, which DROP … WITH (FORCE) does
      // not stop) and the connections it opens may still be in the database: end them and retry.
      for (let attempt = 1; ; attempt++) {
        try {
          await c.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(name)} WITH (FORCE)`);
          return;
        } catch (err) {
          if ((err as { code?: string }).code !== '55006' || attempt >= DROP_ATTEMPTS) throw err;
          await c.query(
            'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
            [name],
          );
          await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
        }
      }
    });
  }
}
