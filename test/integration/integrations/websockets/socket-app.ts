// A tenant app with one socket.io gateway, served by TenantIoAdapter on a free port, and the
// socket.io client the specs connect with. Used by the specs of this folder.
import { EventEmitter } from 'node:events';
import { Injectable, Module, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  MessageBody,
  SubscribeMessage,
  WebSocketGateway,
  type OnGatewayConnection,
  type OnGatewayDisconnect,
} from '@nestjs/websockets';
import {
  io,
  type Socket as ClientSocket,
  type ManagerOptions,
  type SocketOptions,
} from 'socket.io-client';
import {
  DatabaseModule,
  InjectTenantDb,
  SchemaDb,
  TenantAdmission,
  type TenancyOptions,
} from '../../../../lib/index.js';
import {
  TenantIoAdapter,
  type HandshakeTenantResolver,
} from '../../../../lib/integrations/websockets/index.js';

export const NOTES_MIGRATION = {
  '001_notes.sql': 'CREATE TABLE {{tables.notes}} (id serial PRIMARY KEY, text text NOT NULL);',
};

/** What the gateway saw, for the specs to read. */
@Injectable()
export class Seen {
  /** The tenant `handleConnection` ran in, per connection. */
  readonly connections: (string | undefined)[] = [];
  /** Emits `disconnect` once the gateway's `handleDisconnect` ran (after the adapter's own). */
  readonly disconnects = new EventEmitter();
}

@WebSocketGateway()
class NotesGateway implements OnGatewayConnection, OnGatewayDisconnect {
  constructor(
    @InjectTenantDb() private readonly db: SchemaDb,
    private readonly admission: TenantAdmission,
    private readonly seen: Seen,
  ) {}

  handleConnection(): void {
    this.seen.connections.push(this.admission.currentTenantId());
  }

  handleDisconnect(): void {
    this.seen.disconnects.emit('disconnect');
  }

  /** Writes a note in the current tenant; answers with the tenant it ran in. */
  @SubscribeMessage('note')
  async note(@MessageBody() body: { text: string }): Promise<string | undefined> {
    await this.db.execute('INSERT INTO {{tables.notes}} (text) VALUES ($1)', [body.text]);
    return this.admission.currentTenantId();
  }

  @SubscribeMessage('whoami')
  whoami(): string | undefined {
    return this.admission.currentTenantId();
  }
}

/** A gateway of another namespace, gated as the main one is. */
@WebSocketGateway({ namespace: 'chat' })
class ChatGateway {
  constructor(private readonly admission: TenantAdmission) {}

  @SubscribeMessage('whoami')
  whoami(): string | undefined {
    return this.admission.currentTenantId();
  }
}

/** The app, listening on a free port of 127.0.0.1, and its address. */
export async function startSocketApp(
  tenancy: TenancyOptions,
  connection: string,
  resolver: HandshakeTenantResolver,
): Promise<{ app: INestApplication; url: string }> {
  @Module({
    imports: [DatabaseModule.forRoot({ connection, tenancy })],
    providers: [NotesGateway, ChatGateway, Seen],
  })
  class SocketAppModule {}
  const app = (
    await Test.createTestingModule({ imports: [SocketAppModule] }).compile()
  ).createNestApplication({ logger: false });
  app.useWebSocketAdapter(new TenantIoAdapter(app, { resolver }));
  await app.listen(0, '127.0.0.1');
  return { app, url: (await app.getUrl()).replace('[::1]', '127.0.0.1') };
}

/** Open client sockets, disconnected by `closeAll`. */
export function useClients(url: () => string) {
  const open = new Set<ClientSocket>();
  afterEach(() => closeAll());
  function closeAll(): void {
    for (const socket of open) socket.disconnect();
    open.clear();
  }
  /** A connected client (of `namespace`), or the `connect_error` the handshake was refused with. */
  function connect(
    options: Partial<ManagerOptions & SocketOptions> = {},
    namespace = '',
  ): Promise<ClientSocket> {
    const socket = io(`${url()}${namespace}`, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      // A message the server never answers fails its test now, not at Jest's timeout.
      ackTimeout: 5_000,
      ...options,
    });
    open.add(socket);
    return new Promise((resolve, reject) => {
      socket.once('connect', () => resolve(socket));
      socket.once('connect_error', (err) => {
        open.delete(socket);
        socket.disconnect();
        reject(err);
      });
    });
  }
  return { connect, closeAll };
}

/** The next `exception` event of `socket` and its `disconnect`, in that order. */
export function closedWith(
  socket: ClientSocket,
): Promise<{ exception: { status: string; message: string; error: string }; reason: string }> {
  return new Promise((resolve) => {
    socket.once('exception', (exception) =>
      socket.once('disconnect', (reason) => resolve({ exception, reason })),
    );
  });
}
