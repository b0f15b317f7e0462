// nestjs-pg-tenancy/microservices over Nest's Redis transport (ioredis), against a real Redis
// started for this file: the tenant travels in the packet's metadata.
import { ClientProxyFactory, Transport } from '@nestjs/microservices';
import { Redis } from 'ioredis';
import { lastValueFrom } from 'rxjs';
import type { TenantAdmission } from '../../../../lib/index.js';
import { TenantClient } from '../../../../lib/integrations/microservices/index.js';
import {
  describeWithServer,
  startRedis,
  type ExternalServer,
} from '../../../support/external-servers.js';
import { tenantMessagesSuite } from './tenant-messages.suite.js';

describeWithServer('redis', 'microservices over Redis', () => {
  tenantMessagesSuite(async () => {
    const redis = await startRedis();
    const options = { host: redis.host, port: redis.port };
    return {
      server: { transport: Transport.REDIS, options },
      client: { transport: Transport.REDIS, options },
      stop: () => redis.stop(),
    };
  });
});

describeWithServer('redis', 'the tenant on the Redis wire', () => {
  let redis: ExternalServer;
  beforeAll(async () => (redis = await startRedis()));
  afterAll(() => redis?.stop());

  it("is an entry of the packet's metadata, beside the payload", async () => {
    const listener = new Redis({ host: redis.host, port: redis.port, lazyConnect: true });
    const proxy = ClientProxyFactory.create({
      transport: Transport.REDIS,
      options: { host: redis.host, port: redis.port },
    });
    try {
      await listener.connect();
      await listener.subscribe('wire.check');
      const received = new Promise<string>((resolve) =>
        listener.on('message', (_channel: string, message: string) => resolve(message)),
      );
      // A dispatch hook set before (tracing, say) still runs, and its metadata stays.
      proxy.setOnDispatchHook((packet) => (packet.metadata = { trace: 'abc' }));
      const client = new TenantClient(proxy, noTenantHere);
      await lastValueFrom(client.emit('wire.check', { text: 'hi' }, { tenantId: 'acme' }));
      expect(JSON.parse(await received)).toEqual({
        pattern: 'wire.check',
        data: { text: 'hi' },
        metadata: { trace: 'abc', 'x-tenant-id': 'acme' },
      });
    } finally {
      await proxy.close();
      listener.disconnect();
    }
  });
});

/** The sender outside any tenant's work: the calls above name their tenant. */
const noTenantHere = { currentTenantId: () => undefined } as unknown as TenantAdmission;
