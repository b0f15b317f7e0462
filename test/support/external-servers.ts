// Real brokers for the integration tests (#26): Redis (BullMQ, the Redis transport) and NATS, from
// Debian's `redis-server` and `nats-server` packages that `.ci/run` installs. Each test file starts
// its own server on a free port, and stops it in `afterAll`. No mocks of a queue or a broker.
//
// Where the binary is missing, the suite is skipped with a loud message, except under CI (`CI` set),
// where a missing broker fails the run: CI must test every integration.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A broker started for one test file. */
export interface ExternalServer {
  readonly host: string;
  readonly port: number;
  /** `redis://127.0.0.1:<port>` or `nats://127.0.0.1:<port>`. */
  readonly url: string;
  stop(): Promise<void>;
}

const BINARIES = { redis: 'redis-server', nats: 'nats-server' } as const;
type Kind = keyof typeof BINARIES;

/** Whether the broker's binary is installed (on `PATH` or in Debian's place). */
function hasServer(kind: Kind): boolean {
  return binaryOf(kind) !== undefined;
}

function binaryOf(kind: Kind): string | undefined {
  const name = BINARIES[kind];
  for (const candidate of [name, `/usr/bin/${name}`, `/usr/sbin/${name}`]) {
    const probe = spawnSync(candidate, ['--version'], { stdio: 'ignore' });
    if (probe.status === 0) return candidate;
  }
  return undefined;
}

/**
 * `describe` when the broker is installed; otherwise `describe.skip` with a warning, or, under CI,
 * a suite with one failing test that says what to install.
 */
export function describeWithServer(kind: Kind, name: string, body: () => void): void {
  if (hasServer(kind)) {
    describe(name, body);
    return;
  }
  const hint = `${BINARIES[kind]} is not installed (Debian: apt-get install ${BINARIES[kind]})`;
  if (process.env.CI) {
    describe(name, () => {
      it(`needs ${BINARIES[kind]}`, () => {
        throw new Error(`${hint}; CI must run every integration's tests.`);
      });
    });
    return;
  }
  console.warn(`SKIPPED "${name}": ${hint}.`);
  describe.skip(name, body);
}

/** A port free at the time of asking, on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Starts a Redis server with no persistence on a free port. */
export function startRedis(): Promise<ExternalServer> {
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
export function startNats(): Promise<ExternalServer> {
  return start('nats', (port) => ['--addr', '127.0.0.1', '--port', String(port)]);
}

async function start(
  kind: Kind,
  args: (port: number, dir: string) => string[],
): Promise<ExternalServer> {
  const binary = binaryOf(kind);
  if (!binary) throw new Error(`${BINARIES[kind]} is not installed`);
  const dir = mkdtempSync(join(tmpdir(), `${kind}-`));
  // A port taken between asking and binding makes the server exit: try a few.
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const child = spawn(binary, args(port, dir), { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
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
    await stopChild(child, exited);
    if (attempt >= 4) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`${BINARIES[kind]} did not start: ${output.slice(-2000)}`);
    }
  }
}

async function stopChild(child: ChildProcess, exited: Promise<unknown>): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await exited;
}

/** Resolves once something accepts connections on the port (polled by connecting, not by time). */
async function waitForPort(port: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
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
