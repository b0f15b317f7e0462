// A throwaway Redis for the suites that need one (the leak fuzzer's queues channel): Debian's
// `redis-server` on a free port of 127.0.0.1, no persistence, stopped by the caller. `undefined`
// when redis-server is not installed.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BINARIES = ['redis-server', '/usr/bin/redis-server', '/usr/sbin/redis-server'];

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Resolves true once Redis answers PING on `port`, false if the process exits first. */
function ready(port, exited) {
  let stop = false;
  exited.then(() => (stop = true));
  const ping = () =>
    new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => socket.write('PING\r\n'));
      socket.once('data', (data) => {
        socket.destroy();
        resolve(String(data).startsWith('+PONG'));
      });
      socket.once('error', () => resolve(false));
    });
  return (async () => {
    for (let i = 0; i < 500 && !stop; i++) {
      if (await ping()) return true;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return false;
  })();
}

/** Starts a Redis; resolves `{ host, port, stop() }`, or `undefined` without redis-server. */
export async function startRedis() {
  const binary = BINARIES.find(
    (b) => spawnSync(b, ['--version'], { stdio: 'ignore' }).status === 0,
  );
  if (!binary) return undefined;
  const dir = mkdtempSync(join(tmpdir(), 'bench-redis-'));
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const args = [
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
    ];
    const child = spawn(binary, args, { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    if (await ready(port, exited)) {
      return {
        host: '127.0.0.1',
        port,
        async stop() {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
          await exited;
          rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error('redis-server did not start');
}
