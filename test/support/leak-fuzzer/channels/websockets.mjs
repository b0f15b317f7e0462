// The WebSockets integration's channel (nestjs-pg-tenancy/websockets): socket.io connections
// through `TenantIoAdapter`, the tenant named once in the handshake's `auth`, one connection per
// tenant shared by the operations for it (opened again after the server closes it), each operation
// a message the gateway answers with an ack, one at a time per connection (so that an `exception`
// event can only be the answer to the message in flight). A refusal arrives as the handshake's `connect_error`
// (`err.data.error`), or as the `exception` event before the server closes the connection.
import { Inject } from '@nestjs/common';
import { MessageBody, SubscribeMessage, WebSocketGateway } from '@nestjs/websockets';
import { io } from 'socket.io-client';
import { FuzzWork } from '../app.mjs';

// Generous: a loaded CI machine must not turn a slow answer into a fault.
const ACK_TIMEOUT_MS = 20_000;

/** The gateway: one message, `fuzz`, that runs the work in the connection's tenant. */
class FuzzGateway {
  constructor(work) {
    this.work = work;
  }

  async perform(body) {
    await this.work.perform(body.op, body.intended, 'websockets', body.pause);
    return { ok: true };
  }
}

let decorated = false;
function decorate() {
  if (decorated) return;
  decorated = true;
  WebSocketGateway()(FuzzGateway);
  Inject(FuzzWork)(FuzzGateway, undefined, 0);
  const proto = FuzzGateway.prototype;
  SubscribeMessage('fuzz')(proto, 'perform', Object.getOwnPropertyDescriptor(proto, 'perform'));
  MessageBody()(proto, 'perform', 0);
}

/** What refused the work, from the `exception` event's payload (or its absence). */
function refusal(exception) {
  if (!exception) return { name: 'Disconnected', message: 'closed without an exception event' };
  return { name: String(exception.error), message: String(exception.message) };
}

export default async function websocketsChannel({ entry }) {
  const { TenantIoAdapter, fromHandshakeAuth } = await entry();
  decorate();
  let url;
  const open = new Set();
  const byTenant = new Map();

  /** A connection for `tenant`, once the handshake admitted it; rejects with the refusal. */
  const connect = (tenant) =>
    new Promise((resolve, reject) => {
      const socket = io(url, {
        auth: tenant === undefined ? {} : { tenantId: tenant },
        transports: ['websocket'],
        reconnection: false,
        forceNew: true,
      });
      open.add(socket);
      const conn = { socket, queue: Promise.resolve(), current: undefined, closed: false };
      // An exception event answers the message in flight (one at a time per connection), or
      // tells why the server is about to close the connection.
      const fail = (data) => {
        conn.last = data;
        conn.current?.(refusal(data));
        conn.current = undefined;
      };
      socket.on('exception', fail);
      socket.on('disconnect', () => {
        conn.closed = true;
        open.delete(socket);
        fail(conn.last);
      });
      socket.once('connect', () => resolve(conn));
      socket.once('connect_error', (err) => {
        socket.close();
        open.delete(socket);
        reject({
          name: err.data?.error ?? err.message,
          message: err.message,
          status: err.data?.status,
        });
      });
    });

  /** The shared connection of `tenant` (a new one when there is none or it was closed). */
  const connectionOf = async (tenant) => {
    let opening = byTenant.get(tenant);
    if (opening) {
      const conn = await opening.catch(() => undefined);
      if (conn && !conn.closed) return conn;
      if (byTenant.get(tenant) === opening) byTenant.delete(tenant);
    }
    opening = byTenant.get(tenant) ?? connect(tenant);
    byTenant.set(tenant, opening);
    opening.catch(() => byTenant.get(tenant) === opening && byTenant.delete(tenant));
    return opening;
  };

  /** Sends `op` on `conn` once the connection's previous message is answered. */
  const message = (conn, op) => {
    const run = () =>
      new Promise((resolve, reject) => {
        if (conn.closed) return reject(refusal(conn.last));
        conn.current = reject;
        conn.socket
          .timeout(ACK_TIMEOUT_MS)
          .emit('fuzz', { op: op.id, intended: op.intended, pause: op.pause }, (err) => {
            if (conn.current === reject) conn.current = undefined;
            if (err) reject({ name: 'AckTimeout', message: String(err.message ?? err) });
            else resolve();
          });
      });
    const turn = conn.queue.then(run, run);
    conn.queue = turn.catch(() => undefined);
    return turn;
  };

  return {
    name: 'websockets',
    weight: 2,
    module: { providers: [FuzzGateway] },
    async configure(app) {
      app.useWebSocketAdapter(
        new TenantIoAdapter(app, { resolver: fromHandshakeAuth('tenantId') }),
      );
    },
    async start(ctx) {
      url = ctx.url;
    },
    async send(op) {
      if (op.kind !== 'tenant') {
        // No shared connection for work without a valid tenant: it must be refused at the handshake.
        const conn = await connect(op.tenant);
        try {
          await message(conn, op);
        } finally {
          conn.socket.close();
        }
        return;
      }
      await message(await connectionOf(op.tenant), op);
    },
    async stop() {
      for (const socket of open) socket.close();
    },
  };
}
