// No embedded server outlives the process that started it: a watchdog stops it when that process
// ends without stop(), and a server left by a run whose watchdog was killed too is found and
// stopped on the next start.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EmbeddedPostgresError } from './embedded.errors.js';
import {
  isRunning,
  processCommand,
  servesDirectory,
  signal,
  stopProcess,
} from './server-process.js';

/** Which process started the server in this data directory: tells an orphan from a live one. */
const OWNER_FILE = 'embedded-postgres.owner.json';

interface Owner {
  pid: number;
  postmaster: number;
  watchdog?: number;
}

/**
 * Puts the server under a watchdog and returns the server's `stop()`. The watchdog is a second
 * detached process reading a pipe from this one: the pipe closes when this process ends in any
 * way, and the watchdog then stops the server and deletes a temporary directory.
 */
export async function watchServer(
  pid: number,
  child: ChildProcess,
  dataDir: string,
  root: string | undefined,
): Promise<() => Promise<void>> {
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
  return () =>
    (stopped ??= (async () => {
      // The watchdog goes first, so it cannot signal the pid once the server is gone.
      if (watchdog.pid) signal(watchdog.pid, 'SIGKILL');
      pipe.destroy();
      if (!exited) await stopProcess(pid, 30_000, () => exited);
      if (root) await rm(root, { recursive: true, force: true });
      else await rm(join(dataDir, OWNER_FILE), { force: true });
    })());
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
export async function recoverStaleServer(dataDir: string, onLog: (message: string) => void) {
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
