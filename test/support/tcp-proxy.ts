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

/**
 * A TCP proxy on 127.0.0.1 in front of PostgreSQL that loses notifications on demand: while
 * `losing` is on, every NotificationResponse the server sends down an open connection is
 * discarded, message by message, and everything else passes. The connection stays open and in
 * step, as one whose network dropped a stretch of traffic that nobody retransmitted would look
 * to the library: only the notifications are gone.
 */
export interface LossyProxy {
  readonly url: string;
  /** Discard notifications while `true`, or those on the channels a RegExp matches. */
  losing: boolean | RegExp;
  /** Notifications discarded so far. */
  readonly dropped: number;
  close(): Promise<void>;
}

export async function startLossyProxy(targetUrl: string): Promise<LossyProxy> {
  const target = new URL(targetUrl);
  const sockets = new Set<net.Socket>();
  const state: { losing: boolean | RegExp; dropped: number } = { losing: false, dropped: 0 };
  // The message: type, length, the sender's pid (int32), then the channel, NUL-terminated.
  const loses = (message: Buffer, at: number) => {
    if (typeof state.losing === 'boolean') return state.losing;
    const channel = message.subarray(at + 9, message.indexOf(0, at + 9)).toString();
    return state.losing.test(channel);
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    }
    client.on('data', (chunk) => upstream.write(chunk));
    // Server messages: a type byte, then an int32 length that counts itself and the body.
    let pending = Buffer.alloc(0);
    upstream.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      const keep: Buffer[] = [];
      let at = 0;
      while (pending.length - at >= 5) {
        const end = at + 1 + pending.readInt32BE(at + 1);
        if (end > pending.length) break;
        const lost = pending[at] === 0x41 /* 'A': NotificationResponse */ && loses(pending, at);
        if (lost) state.dropped++;
        else keep.push(pending.subarray(at, end));
        at = end;
      }
      pending = pending.subarray(at);
      if (keep.length > 0) client.write(Buffer.concat(keep));
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const url = new URL(targetUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return {
    url: url.toString(),
    get losing() {
      return state.losing;
    },
    set losing(on: boolean | RegExp) {
      state.losing = on;
    },
    get dropped() {
      return state.dropped;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
