// nestjs-pg-tenancy/microservices over Nest's TCP transport (a free port): the tenant travels in
// the packet's metadata. Also: a hybrid app, connected with connectTenantMicroservice.
import { Controller, type INestApplication, type INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  ClientProxyFactory,
  MessagePattern,
  Transport,
  type ClientProxy,
  type MicroserviceOptions,
} from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { lastValueFrom } from 'rxjs';
import {
  DatabaseModule,
  InvalidOptionsError,
  TenantAdmission,
  TenantService,
} from '../../../../lib/index.js';
import {
  connectTenantMicroservice,
  registerTenantMessages,
  TenantClient,
} from '../../../../lib/integrations/microservices/index.js';
import { useTestDatabase } from '../../../support/database.js';
import { freePort } from '../../../support/external-servers.js';
import { RecordingLogger } from '../../../support/logs.js';
import { useMigrationFolders } from '../../../support/migrations.js';
import { tenantMessagesSuite } from './tenant-messages.suite.js';

describe('microservices over TCP', () => {
  tenantMessagesSuite(async () => {
    const port = await freePort();
    const options = { host: '127.0.0.1', port };
    return {
      server: { transport: Transport.TCP, options },
      client: { transport: Transport.TCP, options },
      stop: async () => {},
    };
  });
});

// A hybrid app: Nest applies the app's global interceptors (TenantInterceptor among them) to a
// connected microservice only with `inheritAppConfig: true`; the hook works without them.
@Controller()
class WhoController {
  constructor(private readonly admission: TenantAdmission) {}

  @MessagePattern('who')
  who() {
    return this.admission.currentTenantId() ?? null;
  }
}

describe('microservices over TCP in a hybrid app', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let app: INestApplication;
  let client: TenantClient;
  let admission: TenantAdmission;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          tenancy: { migrations: await folder({ '001_t.sql': 'CREATE TABLE {{tables.t}} ();' }) },
        }),
      ],
      controllers: [WhoController],
    })
      .setLogger(new RecordingLogger())
      .compile();
    app = moduleRef.createNestApplication();
    const options = { host: '127.0.0.1', port: await freePort() };
    const microservice = connectTenantMicroservice(app, { transport: Transport.TCP, options });
    expect(() => registerTenantMessages(microservice)).toThrow(InvalidOptionsError);
    await app.startAllMicroservices();
    await app.init();
    admission = app.get(TenantAdmission);
    const tenants = app.get(TenantService);
    for (const id of ['h1', 'h2']) await tenants.create(id);
    client = new TenantClient(
      ClientProxyFactory.create({ transport: Transport.TCP, options }),
      admission,
    );
  });

  afterAll(async () => {
    await client?.proxy.close();
    await app?.close();
  });

  it("runs each handler in the sender's tenant, without the app's global interceptors", async () => {
    const who = async (id: string) =>
      admission.run(await admission.admit(id, { source: 'the test' }), () =>
        lastValueFrom(client.send<string | null>('who', {})),
      );
    await expect(Promise.all([who('h1'), who('h2'), who('h1')])).resolves.toEqual([
      'h1',
      'h2',
      'h1',
    ]);
    await expect(
      lastValueFrom(client.send('who', {}, { withoutTenant: true })),
    ).rejects.toMatchObject({
      reason: 'TenantRequiredError',
    });
  });

  it('shares one stamp between the TenantClients of one proxy', async () => {
    const again = new TenantClient(client.proxy, admission);
    await expect(lastValueFrom(again.send('who', {}, { tenantId: 'h2' }))).resolves.toBe('h2');
    await expect(
      lastValueFrom(again.send('who', {}, { withoutTenant: true })),
    ).rejects.toMatchObject({ reason: 'TenantRequiredError' });
    expect(() => new TenantClient(client.proxy, admission, { header: 'x-org' })).toThrow(
      InvalidOptionsError,
    );
  });
});

// Without registerTenantMessages, a microservice made with NestFactory.createMicroservice still
// runs the module's global TenantInterceptor (Nest applies APP_INTERCEPTORs to it), whose
// resolvers read HTTP requests: a message, whatever its payload says, names no tenant there.
describe('a microservice over TCP without the hook', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let app: INestMicroservice;
  let proxy: ClientProxy;
  const logger = new RecordingLogger();

  beforeAll(async () => {
    const options = { host: '127.0.0.1', port: await freePort() };
    app = await NestFactory.createMicroservice<MicroserviceOptions>(
      {
        module: class BareModule {},
        imports: [
          DatabaseModule.forRoot({
            connection: database.current.url,
            tenancy: { migrations: await folder({ '001_t.sql': 'CREATE TABLE {{tables.t}} ();' }) },
          }),
        ],
        controllers: [WhoController],
      },
      { transport: Transport.TCP, options, logger },
    );
    await app.listen();
    await app.get(TenantService).create('b1');
    proxy = ClientProxyFactory.create({ transport: Transport.TCP, options });
  });

  afterAll(async () => {
    await proxy?.close();
    await app?.close();
  });

  it('fails closed: a payload that claims a tenant does not name one', async () => {
    const claims = { headers: { 'x-tenant-id': 'b1' }, user: { tenantId: 'b1' } };
    await expect(lastValueFrom(proxy.send('who', claims))).rejects.toEqual({
      status: 'error',
      message: 'Internal server error',
    });
    expect(logger.errors.join('\n')).toContain('TenantRequiredError');
  });
});
