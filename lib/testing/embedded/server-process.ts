// The operating-system side of the embedded server: its processes, signals and log.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile, readlink } from 'node:fs/promises';
import { basename, isAbsolute, resolve } from 'node:path';
import { promisify } from 'node:util';
import { EmbeddedPostgresError } from './embedded.errors.js';

const LOG_TAIL_LINES = 15;

/** `execFile`, promised. */
export const execFileAsync = promisify(execFile);

/** The command line of `pid`, or `undefined` when this platform does not tell. */
export async function processCommand(pid: number): Promise<string[] | undefined> {
  const proc = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined);
  if (proc !== undefined) return proc.split('\0').filter(Boolean);
  const ps = await execFileAsync('ps', ['-o', 'command=', '-p', String(pid)]).catch(
    () => undefined,
  );
  return ps ? ps.stdout.trim().split(/\s+/) : undefined;
}

/** Whether `pid`, running `command`, is a PostgreSQL server of `dataDir`. */
export async function servesDirectory(pid: number, command: string[], dataDir: string) {
  if (!/^postgres(\.exe)?$/.test(basename(command[0] ?? ''))) return false;
  const flag = command.indexOf('-D');
  const arg = flag === -1 ? undefined : command[flag + 1];
  if (arg === undefined) return false;
  if (isAbsolute(arg)) return resolve(arg) === dataDir;
  const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => undefined);
  return cwd === undefined || resolve(cwd, arg) === dataDir;
}

/** SIGINT (fast shutdown), then SIGQUIT, then SIGKILL, until `pid` is gone. */
export async function stopProcess(pid: number, graceMs: number, gone = () => false): Promise<void> {
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
export function isRunning(pid: number): boolean {
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
export function signal(pid: number, sig: NodeJS.Signals | 0): boolean {
  try {
    return process.kill(pid, sig);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The last lines of a log, indented, for an error message. */
export function tail(text: string): string {
  const lines = text.trimEnd().split('\n');
  return lines
    .slice(-LOG_TAIL_LINES)
    .map((line) => `  ${line}`)
    .join('\n');
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}
