// The microservices integration's channel (nestjs-pg-tenancy/microservices): a TCP microservice
// connected to the serving app with `connectTenantMicroservice`, and a `TenantClient` that sends
// each operation as a request. Most name their tenant per call (`{ tenantId }`), some are sent from
// inside the tenant's work (stamped from the context), and those without a tenant say so
// (`{ withoutTenant: true }`): the receiver must refuse them. A refusal comes back as a
// `TenantMessageRefusedError` whose `reason` is the receiver's error name.
import net from 'node:net';
import { Controller, Inject } from '@nestjs/common';
import { ClientProxyFactory, MessagePattern, Payload, Transport } from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import { FuzzWork } from '../app.mjs';

/** The receiving handler: one pattern, `fuzz`, that runs the work in the message's tenant. */
class FuzzMessages {
  constructor(work) {
    this.work = work;
  }

  async perform(body) {
    await this.work.perform(body.op, body.intended, 'microservices', body.pause);
    return { ok: true };
  }
}

let decorated = false;
function decorate() {
  if (decorated) return;
  decorated = true;
  Controller()(FuzzMessages);
  Inject(FuzzWork)(FuzzMessages, undefined, 0);
  const proto = FuzzMessages.prototype;
  MessagePattern('fuzz')(proto, 'perform', Object.getOwnPropertyDescriptor(proto, 'perform'));
  Payload()(proto, 'perform', 0);
}

/** A port free right now on 127.0.0.1 (the TCP transport needs one before it listens). */
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

export default async function microservicesChannel({ lib, entry }) {
  const { connectTenantMicroservice, TenantClient, TenantMessageRefusedError } = await entry();
  decorate();
  let port, proxy, client, tenants;

  const request = (op, options) =>
    lastValueFrom(
      client.send('fuzz', { op: op.id, intended: op.intended, pause: op.pause }, options),
    );

  return {
    name: 'microservices',
    weight: 2,
    module: { controllers: [FuzzMessages] },
    async configure(app) {
      port = await freePort();
      connectTenantMicroservice(app, {
        transport: Transport.TCP,
        options: { host: '127.0.0.1', port },
      });
      await app.startAllMicroservices();
    },
    async start(ctx) {
      proxy = ClientProxyFactory.create({
        transport: Transport.TCP,
        options: { host: '127.0.0.1', port },
      });
      await proxy.connect();
      client = new TenantClient(proxy, ctx.app.get(lib.TenantAdmission));
      tenants = ctx.app.get(lib.TenantService);
    },
    async send(op) {
      try {
        if (op.kind === 'missing') await request(op, { withoutTenant: true });
        else if (op.kind === 'tenant' && op.id % 4 === 0)
          await tenants.run(op.tenant, () => request(op)); // stamped from the sender's context
        else await request(op, { tenantId: op.tenant });
      } catch (err) {
        if (err instanceof TenantMessageRefusedError)
          throw { name: err.reason, message: err.message };
        throw err;
      }
    },
    async stop() {
      await proxy?.close();
    },
  };
}
