import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SAMPLE_APP = join(ROOT, 'sample-app');
const MAIN = join(SAMPLE_APP, 'dist', 'main.js');

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Reply<T> {
  status: number;
  body: T;
}

export interface RequestOptions {
  tenant?: string;
  token?: string;
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as is, with `contentType`. */
  rawBody?: string;
  contentType?: string;
}

/** The sample app running as a child process (`node sample-app/dist/main.js`). */
export interface SampleApp {
  /** Where it listens, as printed on stdout. */
  readonly url: string;
  readonly child: ChildProcess;
  /** Resolves once the process has exited. */
  readonly exited: Promise<Exit>;
  /** Everything it printed so far, stdout and stderr interleaved. */
  output(): string;
  /** Sends `signal` and waits for the process to exit on its own. */
  stop(signal?: NodeJS.Signals): Promise<Exit>;
  request<T = unknown>(method: string, path: string, options?: RequestOptions): Promise<Reply<T>>;
}

const running = new Set<SampleApp>();

/**
 * Starts the built sample app with `env` added to this process's environment (a key set to
 * `undefined` is removed) and resolves once it prints its "listening on" line.
 */
export async function startSampleApp(
  options: {
    env?: Record<string, string | undefined>;
    cwd?: string;
    startTimeoutMs?: number;
    /** The script to run. Default: the built sample app. */
    main?: string;
    /** Its own process group, so that a test can signal the group as a terminal's Ctrl-C does. */
    detached?: boolean;
  } = {},
): Promise<SampleApp> {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', NO_COLOR: '1', ...options.env };
  for (const [key, value] of Object.entries(env)) if (value === undefined) delete env[key];
  const child = spawn(process.execPath, [options.main ?? MAIN], {
    cwd: options.cwd ?? ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false,
  });
  let output = '';
  const exited = new Promise<Exit>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const app: SampleApp = {
    url: '',
    child,
    exited,
    output: () => output,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
    request: (method, path, requestOptions) => request(app.url, method, path, requestOptions),
  };
  running.add(app);
  void exited.then(() => running.delete(app));

  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`The sample app did not start within the deadline:\n${output}`)),
      options.startTimeoutMs ?? 60_000,
    );
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      const listening = /listening on (http:\/\/\S+)/.exec(output);
      if (listening) {
        clearTimeout(timer);
        resolve(listening[1]);
      }
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    void exited.then((exit) => {
      clearTimeout(timer);
      reject(
        new Error(`The sample app exited (${JSON.stringify(exit)}) before listening:\n${output}`),
      );
    });
  });
  return Object.assign(app, { url });
}

/**
 * Stops every sample app still running: SIGTERM, then SIGKILL if one has not exited within
 * `graceMs`. For afterAll/afterEach, so that a failed test leaves no process behind.
 */
export async function stopAllSampleApps(graceMs = 10_000): Promise<void> {
  await Promise.all(
    [...running].map(async (app) => {
      let timer: NodeJS.Timeout | undefined;
      const overdue = new Promise<'overdue'>((resolve) => {
        timer = setTimeout(() => resolve('overdue'), graceMs);
      });
      const result = await Promise.race([app.stop('SIGTERM'), overdue]);
      clearTimeout(timer);
      if (result === 'overdue') {
        app.child.kill('SIGKILL');
        await app.exited;
      }
    }),
  );
}

/**
 * Stops a PostgreSQL left running in `dataDir` (its app was killed before it could stop it) and
 * waits until it is gone. A no-op when none runs there.
 */
export async function stopStrayPostgres(dataDir: string, timeoutMs = 10_000): Promise<void> {
  const pidFile = await readFile(join(dataDir, 'postmaster.pid'), 'utf8').catch(() => undefined);
  const pid = Number(pidFile?.split('\n')[0]);
  if (!pid || !alive(pid)) return;
  process.kill(pid, 'SIGQUIT');
  const deadline = Date.now() + timeoutMs;
  while (alive(pid)) {
    if (Date.now() > deadline) throw new Error(`PostgreSQL (pid ${pid}) did not stop`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Is there a process `pid` that has not exited? (An exited one may linger unreaped, a zombie.) */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(') ') + 2)[0] !== 'Z';
  } catch {
    return true; // no procfs: trust the signal check
  }
}

/**
 * Builds `sample-app/dist` when it is missing or older than a source file. `npm test` builds it
 * in `pretest`; this covers running the spec on its own after `npm run build`.
 */
export async function ensureSampleAppBuilt(): Promise<void> {
  const built = await stat(MAIN).then(
    (s) => s.mtimeMs,
    () => 0,
  );
  const sources = await readdir(join(SAMPLE_APP, 'src'), { recursive: true });
  const newest = Math.max(
    (await stat(join(SAMPLE_APP, 'tsconfig.json'))).mtimeMs,
    ...(await Promise.all(
      sources.map(async (f) => (await stat(join(SAMPLE_APP, 'src', f))).mtimeMs),
    )),
  );
  if (built >= newest) return;
  await promisify(execFile)('npm', ['run', 'build:sample'], { cwd: ROOT });
}

async function request<T>(
  baseUrl: string,
  method: string,
  path: string,
  options: RequestOptions = {},
): Promise<Reply<T>> {
  const headers: Record<string, string> = {};
  if (options.tenant !== undefined) headers['x-tenant-id'] = options.tenant;
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.rawBody !== undefined) {
    body = options.rawBody;
    headers['content-type'] = options.contentType ?? 'text/plain';
  } else if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(`${baseUrl}${path}`, { method, headers, body });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
}
