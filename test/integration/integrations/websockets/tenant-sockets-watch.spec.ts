// TenantIoAdapter's watch: the open sockets of a tenant suspended or dropped are closed within
// tenancy.maxStalenessMs (set small here; each wait is bounded by the test's timeout, no sleeps),
// with the reason; the other tenants' sockets stay open; and each round asks once per tenant
// with open sockets, however many sockets it has. This app mounts TenantMiddleware
// (`interceptor: false`): messages run in their connection's tenant all the same.
import { once } from 'node:events';
import type { INestApplication } from '@nestjs/common';
import { jest } from '@jest/globals';
import type { Socket as ClientSocket } from 'socket.io-client';
import {
  TenantAdmission,
  TenantNotFoundError,
  TenantService,
  TenantSuspendedError,
} from '../../../../lib/index.js';
import { fromHandshakeAuth } from '../../../../lib/integrations/websockets/index.js';
import { useTestDatabase } from '../../../support/database.js';
import { useMigrationFolders } from '../../../support/migrations.js';
import { closedWith, NOTES_MIGRATION, Seen, startSocketApp, useClients } from './socket-app.js';

const MAX_STALENESS_MS = 200;
/** Each wait for a close: well above maxStalenessMs, far below a hang. */
const BOUND_MS = 5_000;

describe('TenantIoAdapter: the watch over open sockets', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let app: INestApplication;
  let url: string;
  let tenants: TenantService;
  const { connect } = useClients(() => url);

  beforeAll(async () => {
    const tenancy = {
      migrations: await folder(NOTES_MIGRATION),
      registrySchema: 'ws_watch_reg',
      maxStalenessMs: MAX_STALENESS_MS,
      // The middleware mount: gateway messages still run in the connection's tenant.
      interceptor: false,
    };
    ({ app, url } = await startSocketApp(
      tenancy,
      database.current.url,
      fromHandshakeAuth('tenantId'),
    ));
    tenants = app.get(TenantService);
    for (const id of ['w1', 'w2', 'c1', 'c2']) await tenants.create(id);
  });
  afterAll(() => app?.close());

  const as = (tenantId: string) => connect({ auth: { tenantId } });

  it(
    "closes a suspended tenant's sockets with the reason, and leaves the others open",
    async () => {
      const [a, b, other] = [await as('w1'), await as('w1'), await as('w2')];
      const closed = Promise.all([closedWith(a), closedWith(b)]);
      await tenants.suspend('w1');
      const expected = {
        exception: {
          status: 'error',
          message: new TenantSuspendedError('w1').message,
          error: 'TenantSuspendedError',
        },
        reason: 'io server disconnect',
      };
      expect(await closed).toEqual([expected, expected]);
      expect(other.connected).toBe(true);
      expect(await other.emitWithAck('note', { text: 'still here' })).toBe('w2');
      const notes = await (await tenants.db('w2')).fetchAll('SELECT text FROM {{tables.notes}}');
      expect(notes).toEqual([{ text: 'still here' }]);
    },
    BOUND_MS,
  );

  it(
    "closes a dropped tenant's sockets, also after another of its sockets left",
    async () => {
      const [gone, socket] = [await as('w2'), await as('w2')];
      const left = once(app.get(Seen).disconnects, 'disconnect');
      gone.disconnect();
      await left;
      const closed = closedWith(socket);
      await tenants.drop('w2');
      expect((await closed).exception).toEqual({
        status: 'error',
        message: new TenantNotFoundError('w2').message,
        error: 'TenantNotFoundError',
      });
    },
    BOUND_MS,
  );

  it('asks once per tenant with open sockets in each round, however many sockets', async () => {
    const sockets: ClientSocket[] = [];
    for (const id of ['c1', 'c1', 'c1', 'c2', 'c2']) sockets.push(await as(id));
    const admission = app.get(TenantAdmission);
    const asked: string[] = [];
    let threeRounds!: () => void;
    const done = new Promise<void>((resolve) => (threeRounds = resolve));
    const check = jest.spyOn(admission, 'check').mockImplementation(async (id) => {
      asked.push(id);
      if (asked.length === 6) threeRounds();
      return null;
    });
    try {
      await done;
    } finally {
      check.mockRestore();
    }
    const rounds = [asked.slice(0, 2), asked.slice(2, 4), asked.slice(4, 6)];
    for (const round of rounds) expect(round.sort()).toEqual(['c1', 'c2']);
    for (const socket of sockets) expect(socket.connected).toBe(true);
  });
});
