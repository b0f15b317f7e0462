// WebSocket gateways over socket.io with TenantIoAdapter, a real server on a free port and a real
// PostgreSQL: the tenant is resolved and authorized at the handshake and kept per socket; every
// message runs in it (never in a tenant a message body names); a connection that cannot be served
// is refused at the handshake with the typed error's message, and no gateway code runs for it;
// a message for a tenant suspended since the handshake is refused and its socket closed.
import { Module, type ExecutionContext, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { SubscribeMessage, WebSocketGateway } from '@nestjs/websockets';
import type { Socket as ClientSocket } from 'socket.io-client';
import {
  DatabaseModule,
  InvalidOptionsError,
  InvalidTenantIdError,
  TenantAccessDeniedError,
  TenantNotFoundError,
  TenantRequiredError,
  TenantService,
  TenantSuspendedError,
  fromHeader,
} from '../../../../lib/index.js';
import {
  fromHandshakeAuth,
  fromHandshakeHeader,
  fromHandshakeQuery,
  TenantIoAdapter,
} from '../../../../lib/integrations/websockets/index.js';
import { useTestDatabase } from '../../../support/database.js';
import { useMigrationFolders } from '../../../support/migrations.js';
import { closedWith, NOTES_MIGRATION, Seen, startSocketApp, useClients } from './socket-app.js';

describe('TenantIoAdapter: handshake and messages', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let app: INestApplication;
  let url: string;
  let tenants: TenantService;
  const { connect } = useClients(() => url);
  /** What `tenancy.authorize` was asked, and what its context held. */
  const asked: { id: string; type: string; auth: unknown }[] = [];

  beforeAll(async () => {
    const tenancy = {
      migrations: await folder(NOTES_MIGRATION),
      registrySchema: 'ws_reg',
      // A resolver that, for a socket message, would take the tenant from the message body: the
      // adapter must never let it be asked.
      resolver: (ctx: ExecutionContext) =>
        ctx.getType() === 'ws'
          ? ctx.switchToWs().getData<{ tenant?: string } | undefined>()?.tenant
          : fromHeader('x-tenant-id')(ctx),
      authorize: (id: string, ctx: ExecutionContext) => {
        const socket = ctx.switchToWs().getClient<{ handshake: { auth: unknown } }>();
        asked.push({ id, type: ctx.getType(), auth: socket.handshake.auth });
        return id !== 'locked';
      },
      // The watch (every 15 s) stays out of this file: what closes a socket here is a message.
      maxStalenessMs: 60_000,
    };
    const resolver = (socket: Parameters<ReturnType<typeof fromHandshakeAuth>>[0]) =>
      fromHandshakeAuth('tenantId')(socket) ??
      fromHandshakeQuery('tenant')(socket) ??
      fromHandshakeHeader('x-tenant-id')(socket);
    ({ app, url } = await startSocketApp(tenancy, database.current.url, resolver));
    tenants = app.get(TenantService);
    for (const id of ['t1', 't2', 'locked', 'sus', 't3']) await tenants.create(id);
    await tenants.suspend('sus');
  });
  afterAll(() => app?.close());

  const notes = async (tenant: string) =>
    (await tenants.db(tenant)).fetchAll<{ text: string }>(
      'SELECT text FROM {{tables.notes}} ORDER BY text',
    );

  it("runs every message in its connection's tenant, across interleaved sockets of two tenants", async () => {
    const seen = app.get(Seen);
    seen.connections.length = 0;
    const sockets: [string, ClientSocket][] = [];
    for (let i = 0; i < 6; i++) {
      const tenant = i % 2 ? 't2' : 't1';
      sockets.push([tenant, await connect({ auth: { tenantId: tenant } })]);
    }
    expect(seen.connections).toEqual(['t1', 't2', 't1', 't2', 't1', 't2']);
    // Every body names the other tenant: the body never decides.
    const ran = await Promise.all(
      sockets.flatMap(([tenant, socket], s) =>
        Array.from({ length: 5 }, (_, n) =>
          socket
            .emitWithAck('note', {
              text: `${tenant}-${s}-${n}`,
              tenant: tenant === 't1' ? 't2' : 't1',
            })
            .then((ranIn: string) => [tenant, ranIn]),
        ),
      ),
    );
    for (const [tenant, ranIn] of ran) expect(ranIn).toBe(tenant);
    const t1 = await notes('t1');
    const t2 = await notes('t2');
    expect(t1).toHaveLength(15);
    expect(t2).toHaveLength(15);
    expect(t1.every((r) => r.text.startsWith('t1-'))).toBe(true);
    expect(t2.every((r) => r.text.startsWith('t2-'))).toBe(true);
  });

  it("reads the tenant from the handshake's auth payload, query string or header", async () => {
    const byAuth = await connect({ auth: { tenantId: 't1' } });
    const byQuery = await connect({ query: { tenant: 't2' } });
    const byHeader = await connect({ extraHeaders: { 'x-tenant-id': 't1' } });
    expect(await byAuth.emitWithAck('whoami', {})).toBe('t1');
    expect(await byQuery.emitWithAck('whoami', {})).toBe('t2');
    expect(await byHeader.emitWithAck('whoami', {})).toBe('t1');
  });

  it('gates every namespace the adapter serves', async () => {
    const refused = await connect({}, '/chat').then(
      () => undefined,
      (err: Error) => err,
    );
    expect(refused?.message).toBe(
      new TenantRequiredError(
        'a connection to namespace "/chat" must name one: the connection must identify a tenant',
      ).message,
    );
    const chat = await connect({ auth: { tenantId: 't2' } }, '/chat');
    expect(await chat.emitWithAck('whoami', {})).toBe('t2');
  });

  it('asks tenancy.authorize at the handshake, with a ws context that holds the socket', async () => {
    asked.length = 0;
    await connect({ auth: { tenantId: 't2', token: 'x' } });
    expect(asked).toEqual([{ id: 't2', type: 'ws', auth: { tenantId: 't2', token: 'x' } }]);
  });

  it.each([
    ['names no tenant', {}, new TenantRequiredError('x'), 400],
    ['names a malformed one', { tenantId: 'Bad Id!' }, new InvalidTenantIdError(/x/), 400],
    ['names an unknown one', { tenantId: 'nope' }, new TenantNotFoundError('nope'), 404],
    ['names a suspended one', { tenantId: 'sus' }, new TenantSuspendedError('sus'), 403],
    [
      'is refused by tenancy.authorize',
      { tenantId: 'locked' },
      new TenantAccessDeniedError('locked'),
      403,
    ],
  ])(
    'refuses at the handshake a connection that %s, with the typed error, and runs no gateway code',
    async (_case, auth, expected, status) => {
      const seen = app.get(Seen);
      const before = seen.connections.length;
      const refused = await connect({ auth }).then(
        () => undefined,
        (err: Error & { data?: unknown }) => err,
      );
      expect(refused?.data).toEqual({ error: expected.name, status });
      if (expected instanceof TenantRequiredError) {
        expect(refused?.message).toBe(
          new TenantRequiredError(
            'a connection to namespace "/" must name one: the connection must identify a tenant',
          ).message,
        );
      } else if (expected instanceof InvalidTenantIdError) {
        expect(refused?.message).toMatch(/^The tenant id is malformed/);
      } else {
        expect(refused?.message).toBe(expected.message);
      }
      expect(seen.connections.length).toBe(before);
    },
  );

  it('refuses a message for a tenant suspended since the handshake, and closes its socket', async () => {
    const socket = await connect({ auth: { tenantId: 't3' } });
    expect(await socket.emitWithAck('note', { text: 'before' })).toBe('t3');
    await tenants.suspend('t3');
    const closed = closedWith(socket);
    const answer = await new Promise<unknown>((resolve) => {
      // An answer would mean the message ran (a disconnect fails the ack with an error).
      socket.emit('note', { text: 'after' }, (err: Error | null, ranIn: string) => {
        if (!err) resolve({ ranIn });
      });
      void closed.then(resolve);
    });
    expect(answer).toEqual({
      exception: {
        status: 'error',
        message: new TenantSuspendedError('t3').message,
        error: 'TenantSuspendedError',
      },
      reason: 'io server disconnect',
    });
    await tenants.resume('t3');
    expect(await notes('t3')).toEqual([{ text: 'before' }]);
  });

  it('will not serve an app without tenancy, and says what it needs', async () => {
    @WebSocketGateway()
    class PingGateway {
      @SubscribeMessage('ping') ping() {
        return 'pong';
      }
    }
    @Module({
      imports: [DatabaseModule.forRoot({ connection: database.current.url })],
      providers: [PingGateway],
    })
    class NoTenancyModule {}
    const plain = (
      await Test.createTestingModule({ imports: [NoTenancyModule] }).compile()
    ).createNestApplication({ logger: false });
    plain.useWebSocketAdapter(new TenantIoAdapter(plain, { resolver: fromHandshakeAuth('t') }));
    try {
      await expect(plain.init()).rejects.toThrow(InvalidOptionsError);
    } finally {
      await plain.close();
    }
  });
});
