import net from 'node:net';

/**
 * A TCP proxy on 127.0.0.1 in front of PostgreSQL that can go silent: `silence()` makes every
 * connection (open and future) stop forwarding without closing, as a NAT or load balancer that
 * dropped its state does; `restore()` lets new connections through again (the silenced ones stay
 * dead, as they would behind such a device).
 */
export interface SilentProxy {
  readonly url: string;
  silence(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startSilentProxy(targetUrl: string): Promise<SilentProxy> {
  const target = new URL(targetUrl);
  const sockets = new Set<net.Socket>();
  const pairs = new Set<{ silent: boolean }>();
  let silent = false;
  const server = net.createServer((client) => {
    const pair = { silent };
    pairs.add(pair);
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    }
    client.on('data', (chunk) => {
      if (!pair.silent) upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!pair.silent) client.write(chunk);
    });
    // Only a real close on one side is passed on; silence never closes anything.
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => {
      if (!pair.silent) client.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const url = new URL(targetUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return {
    url: url.toString(),
    silence() {
      silent = true;
      for (const pair of pairs) pair.silent = true;
    },
    restore() {
      silent = false;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A TCP port on 127.0.0.1 that nothing listens on: one the kernel gave a server socket, which is
 * then closed. Connecting to it is refused at once (ECONNREFUSED); no fixed port is assumed free.
 */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
