// nestjs-pg-tenancy/microservices over Nest's NATS transport (@nats-io/transport-node), against a
// real NATS server started for this file: the tenant travels in a message header.
import { connect, headers as natsHeaders, type Msg } from '@nats-io/transport-node';
import { ClientProxyFactory, NatsRecord, Transport } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import type { TenantAdmission } from '../../../../lib/index.js';
import { TenantClient } from '../../../../lib/integrations/microservices/index.js';
import {
  describeWithServer,
  startNats,
  type ExternalServer,
} from '../../../support/external-servers.js';
import { tenantMessagesSuite } from './tenant-messages.suite.js';

describeWithServer('nats', 'microservices over NATS', () => {
  tenantMessagesSuite(async () => {
    const nats = await startNats();
    const options = { servers: [nats.url] };
    return {
      server: { transport: Transport.NATS, options },
      client: { transport: Transport.NATS, options },
      stop: () => nats.stop(),
    };
  });
});

describeWithServer('nats', 'the tenant on the NATS wire', () => {
  let nats: ExternalServer;
  beforeAll(async () => (nats = await startNats()));
  afterAll(() => nats?.stop());

  it('is a message header; the body carries the payload alone', async () => {
    const listener = await connect({ servers: [nats.url] });
    const proxy = ClientProxyFactory.create({
      transport: Transport.NATS,
      options: { servers: [nats.url] },
    });
    try {
      const received = new Promise<Msg>((resolve) =>
        listener.subscribe('wire.check', { callback: (_err, msg) => resolve(msg) }),
      );
      await listener.flush();
      const client = new TenantClient(proxy, noTenantHere);
      const headers = natsHeaders();
      headers.set('trace', 'abc');
      await lastValueFrom(
        client.emit('wire.check', new NatsRecord({ text: 'hi' }, headers), { tenantId: 'acme' }),
      );
      const msg = await received;
      expect(msg.headers?.get('x-tenant-id')).toBe('acme');
      expect(msg.headers?.get('trace')).toBe('abc');
      expect(msg.json()).toEqual({ pattern: 'wire.check', data: { text: 'hi' } });
      expect(headers.has('x-tenant-id')).toBe(false); // the caller's headers are left alone
    } finally {
      await proxy.close();
      await listener.close();
    }
  });
});

/** The sender outside any tenant's work: the calls above name their tenant. */
const noTenantHere = { currentTenantId: () => undefined } as unknown as TenantAdmission;
