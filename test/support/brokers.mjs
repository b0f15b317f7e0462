// Real brokers on this machine, for the integration tests (through external-servers.ts) and for
// the bench suites that need one (the leak fuzzer's queues channel): Debian's `redis-server` and
// `nats-server`, each started on a free port of 127.0.0.1 and stopped by its caller.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BINARIES = { redis: 'redis-server', nats: 'nats-server' };

/** The installed binary of `kind`'s server (on `PATH` or in Debian's place), if any. */
function binaryOf(kind) {
  const name = BINARIES[kind];
  for (const candidate of [name, `/usr/bin/${name}`, `/usr/sbin/${name}`]) {
    const probe = spawnSync(candidate, ['--version'], { stdio: 'ignore' });
    if (probe.status === 0) return candidate;
  }
  return undefined;
}

/** The Debian package (and binary) name of `kind`'s server. */
export function serverBinary(kind) {
  return BINARIES[kind];
}

/** Whether `kind`'s server is installed. */
export function hasServer(kind) {
  return binaryOf(kind) !== undefined;
}

/** A port free at the time of asking, on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts a Redis server with no persistence on a free port. */
export function startRedis() {
  return start('redis', (port, dir) => [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
  ]);
}

/** Starts a NATS server on a free port. */
export function startNats() {
  return start('nats', (port) => ['--addr', '127.0.0.1', '--port', String(port)]);
}

async function start(kind, args) {
  const binary = binaryOf(kind);
  if (!binary) throw new Error(`${BINARIES[kind]} is not installed`);
  const dir = mkdtempSync(join(tmpdir(), `${kind}-`));
  // A port taken between asking and binding makes the server exit: try a few.
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const child = spawn(binary, args(port, dir), { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout?.on('data', (chunk) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk) => (output += chunk.toString()));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const up = await Promise.race([waitForPort(port).then(() => true), exited.then(() => false)]);
    if (up) {
      const stop = async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          await exited;
        }
        rmSync(dir, { recursive: true, force: true });
      };
      return { host: '127.0.0.1', port, url: `${kind}://127.0.0.1:${port}`, stop };
    }
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    if (attempt >= 4) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`${BINARIES[kind]} did not start: ${output.slice(-2000)}`);
    }
  }
}

/** Resolves once something accepts connections on the port (polled by connecting, not by time). */
async function waitForPort(port, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on port ${port}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
