import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import {
  EmbeddedPostgresError,
  startEmbeddedPostgres,
  type EmbeddedPostgresServer,
} from '../../../../lib/testing/index.js';
import { alive } from '../../../support/sample-app.js';

const OWNER = resolve('test/fixtures/embedded-owner.mjs');
const hasProc = existsSync('/proc/self/stat');

interface Report {
  pid: number;
  watchdog: number;
  dataDir: string;
  url: string;
}

interface Owner {
  child: ChildProcess;
  report: Report;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children: ChildProcess[] = [];
const servers: EmbeddedPostgresServer[] = [];
let workDir: string;

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'pg-tenancy-embedded-'));
  await chmod(workDir, 0o755);
});
afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await Promise.all(servers.map((server) => server.stop()));
  await rm(workDir, { recursive: true, force: true });
});

/** Runs test/fixtures/embedded-owner.mjs and waits for its report line. */
async function startOwner(mode: string, dataDir?: string, detached = false): Promise<Owner> {
  const child = spawn(process.execPath, [OWNER], {
    env: { ...process.env, MODE: mode, EMBEDDED_DATA_DIR: dataDir ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached,
  });
  children.push(child);
  let output = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
    child.once('exit', (code, signal) => done({ code, signal })),
  );
  const report = await new Promise<Report>((done, fail) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const line = output.split('\n').find((l) => l.startsWith('{'));
      if (line) done(JSON.parse(line) as Report);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    void exited.then((exit) =>
      fail(new Error(`the owner exited (${JSON.stringify(exit)}) before reporting:\n${output}`)),
    );
  });
  return { child, report, output: () => output, exited };
}

/** Waits for `pid` to be gone. Generous: a loaded machine may take seconds to stop a server. */
async function waitGone(pid: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (running(pid)) {
    if (Date.now() > deadline) throw new Error(`process ${pid} is still running`);
    await new Promise((done) => setTimeout(done, 50));
  }
}

function running(pid: number): boolean {
  return alive(pid);
}

function procStat(pid: number): { state: string; pgrp: number; session: number } | undefined {
  try {
    // Fields after "(comm) ": state ppid pgrp session …
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const [state, , pgrp, session] = text.slice(text.lastIndexOf(') ') + 2).split(' ');
    return { state: state, pgrp: Number(pgrp), session: Number(session) };
  } catch {
    return undefined;
  }
}

async function query(url: string, sql: string): Promise<unknown[]> {
  const client = new pg.Client(url);
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

describe('embedded PostgreSQL: lifecycle', () => {
  it('runs the server in a session of its own, out of reach of the terminal’s Ctrl-C', async () => {
    const owner = await startOwner('group', undefined, true);
    if (hasProc) {
      const server = procStat(owner.report.pid)!;
      expect(server.pgrp).not.toBe(owner.child.pid);
      expect(server.session).toBe(owner.report.pid);
    }
    // What a terminal does on Ctrl-C: SIGINT to every process of the foreground group.
    process.kill(-owner.child.pid!, 'SIGINT');
    expect(await owner.exited).toEqual({ code: 0, signal: null });
    expect(owner.output()).toContain('query after SIGINT: ok');
    expect(owner.output()).toContain('server stopped');
    expect(running(owner.report.pid)).toBe(false);
  }, 120_000);

  it('stops the server and deletes its directory when the process crashes after start-up', async () => {
    const owner = await startOwner('crash');
    expect((await owner.exited).code).toBe(1);
    await waitGone(owner.report.pid);
    await waitGone(owner.report.watchdog);
    await expect(stat(owner.report.dataDir)).rejects.toMatchObject({ code: 'ENOENT' });
  }, 120_000);

  it('stops the server when enableShutdownHooks() ends the process with SIGTERM', async () => {
    const owner = await startOwner('nest');
    owner.child.kill('SIGTERM');
    expect(await owner.exited).toEqual({ code: null, signal: 'SIGTERM' });
    await waitGone(owner.report.pid);
  }, 120_000);

  it('refuses a data directory whose server another live process owns', async () => {
    const dataDir = join(workDir, 'shared');
    const owner = await startOwner('hold', dataDir);
    const error = await startEmbeddedPostgres({ dataDir }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(EmbeddedPostgresError);
    expect((error as Error).message).toMatch(
      new RegExp(`in use by an embedded PostgreSQL \\(pid ${owner.report.pid}\\)`),
    );
    owner.child.kill('SIGKILL');
    await owner.exited;
    await waitGone(owner.report.pid);
  }, 120_000);

  it('refuses a second start on a data directory this process already serves', async () => {
    const dataDir = join(workDir, 'twice');
    const server = await startEmbeddedPostgres({ dataDir });
    servers.push(server);
    await expect(startEmbeddedPostgres({ dataDir })).rejects.toThrow(
      /in use by an embedded PostgreSQL \(pid \d+\) this process started: stop\(\) it first/,
    );
    expect(await query(server.url, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
    await server.stop();
  }, 120_000);

  it('recovers the server of a killed run whose watchdog died too', async () => {
    const dataDir = join(workDir, 'orphan');
    const owner = await startOwner('hold', dataDir);
    await query(owner.report.url, 'CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)');
    process.kill(owner.report.watchdog, 'SIGKILL');
    owner.child.kill('SIGKILL');
    await owner.exited;
    expect(running(owner.report.pid)).toBe(true); // orphaned, still holding postmaster.pid

    const messages: string[] = [];
    const server = await startEmbeddedPostgres({ dataDir, onLog: (m) => messages.push(m) });
    servers.push(server);
    expect(messages.join('\n')).toContain(`Stopping PostgreSQL (pid ${owner.report.pid})`);
    expect(running(owner.report.pid)).toBe(false);
    expect(await query(server.url, 'SELECT n FROM kept')).toEqual([{ n: 7 }]);
    await server.stop();
  }, 180_000);

  it('removes a postmaster.pid whose pid now belongs to another program', async () => {
    const dataDir = join(workDir, 'reused');
    const first = await startEmbeddedPostgres({ dataDir });
    await first.stop();
    const other = spawn(process.execPath, ['-e', 'setInterval(() => {}, 60000)'], {
      stdio: 'ignore',
    });
    children.push(other);
    await new Promise((done) => other.once('spawn', done));
    await writeFile(join(dataDir, 'postmaster.pid'), `${other.pid}\n${dataDir}\n`);

    const server = await startEmbeddedPostgres({ dataDir });
    servers.push(server);
    expect(await query(server.url, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
    expect(running(other.pid!)).toBe(true); // left alone
    other.kill('SIGKILL');
    await server.stop();
  }, 180_000);

  it('fails a start that cannot succeed with the tail of the server log', async () => {
    const error = await startEmbeddedPostgres({ settings: { shared_buffers: 'plenty' } }).catch(
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(EmbeddedPostgresError);
    expect((error as Error).message).toMatch(/exited( with code 1)? during start-up/);
    expect((error as Error).message).toMatch(/invalid value for parameter "shared_buffers"/);
  }, 120_000);

  it('fails on a taken port with the server’s own words', async () => {
    const holder = await startEmbeddedPostgres();
    servers.push(holder);
    const error = await startEmbeddedPostgres({ port: holder.port }).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(EmbeddedPostgresError);
    expect((error as Error).message).toMatch(/could not bind|Address already in use/i);
    expect(await readFile(join(holder.dataDir, 'postmaster.pid'), 'utf8')).toMatch(
      new RegExp(`^${holder.pid}\n`),
    );
    await holder.stop();
  }, 180_000);
});
