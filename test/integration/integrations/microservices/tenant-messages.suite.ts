// The behaviours of nestjs-pg-tenancy/microservices, run by one spec per transport (TCP, Redis,
// NATS) against the real broker and a real PostgreSQL. One app is both sides: its TenantClient
// sends through the broker to its own handlers, registered with registerTenantMessages.
import {
  Controller,
  Injectable,
  UseGuards,
  type CanActivate,
  type INestMicroservice,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  ClientProxyFactory,
  EventPattern,
  MessagePattern,
  Payload,
  type ClientProxy,
  type ClientOptions,
  type MicroserviceOptions,
} from '@nestjs/microservices';
import { lastValueFrom } from 'rxjs';
import {
  DatabaseModule,
  InjectTenantDb,
  NoTenant,
  SchemaDb,
  TenantAdmission,
  TenantService,
} from '../../../../lib/index.js';
import {
  MessageWithoutTenantError,
  registerTenantMessages,
  TenantClient,
  TenantMessageRefusedError,
  type TenantMessageOptions,
} from '../../../../lib/integrations/microservices/index.js';
import { DrainController } from '../../../../lib/connection/drain-controller.js';
import { useTestDatabase } from '../../../support/database.js';
import { RecordingLogger } from '../../../support/logs.js';
import { useMigrationFolders } from '../../../support/migrations.js';

/** How a spec reaches its transport: the server's and the client's options. */
export interface TransportUnderTest {
  readonly server: MicroserviceOptions;
  readonly client: ClientOptions;
  stop(): Promise<void>;
}

interface Note {
  readonly text: string;
  /** What a hostile sender claims in the payload: ignored. */
  readonly tenantId?: string;
  readonly headers?: Record<string, string>;
  readonly metadata?: Record<string, string>;
}

/** The tenant each handler saw, and what the authorize hook was shown. */
const seen = {
  events: new Map<string, (tenant: string | undefined) => void>(),
  authorized: [] as string[],
  guarded: [] as (string | undefined)[],
};

/** Guards run after the hook: they see the message's tenant. */
@Injectable()
class SeesTenantGuard implements CanActivate {
  constructor(private readonly admission: TenantAdmission) {}
  canActivate() {
    seen.guarded.push(this.admission.currentTenantId());
    return true;
  }
}

@Controller()
class NotesController {
  constructor(
    @InjectTenantDb() private readonly db: SchemaDb,
    private readonly admission: TenantAdmission,
  ) {}

  @MessagePattern('notes.add')
  @UseGuards(SeesTenantGuard)
  async add(@Payload() note: Note) {
    await this.db.execute('INSERT INTO {{tables.notes}} (text) VALUES ($1)', [note.text]);
    return { tenant: this.admission.currentTenantId() };
  }

  @EventPattern('notes.added')
  async added(@Payload() note: Note) {
    seen.events.get(note.text)?.(this.admission.currentTenantId());
    await this.db.execute('INSERT INTO {{tables.notes}} (text) VALUES ($1)', [note.text]);
  }

  @NoTenant()
  @MessagePattern('health')
  health() {
    return { tenant: this.admission.currentTenantId() ?? null };
  }
}

/** Registers the suite; `transport` starts the broker (or picks a port) for this file. */
export function tenantMessagesSuite(transport: () => Promise<TransportUnderTest>): void {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  const logger = new RecordingLogger();
  let broker: TransportUnderTest;
  let app: INestMicroservice;
  let proxy: ClientProxy;
  let client: TenantClient;
  let admission: TenantAdmission;
  let tenants: TenantService;

  beforeAll(async () => {
    broker = await transport();
    const migrations = await folder({
      '001_notes.sql': 'CREATE TABLE {{tables.notes}} (id serial PRIMARY KEY, text text NOT NULL);',
    });
    const module = {
      module: class NotesModule {},
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          tenancy: {
            migrations,
            authorize: (id, ctx) => {
              seen.authorized.push(`${id} ${ctx.getType()}`);
              return id !== 'denied';
            },
          },
        }),
      ],
      controllers: [NotesController],
    };
    app = await NestFactory.createMicroservice<MicroserviceOptions>(module, {
      ...broker.server,
      logger,
    });
    registerTenantMessages(app);
    await app.listen();
    tenants = app.get(TenantService);
    admission = app.get(TenantAdmission);
    for (const id of ['t1', 't2', 'off', 'denied']) await tenants.create(id);
    await tenants.suspend('off');
    proxy = ClientProxyFactory.create(broker.client);
    client = new TenantClient(proxy, admission);
  });

  afterAll(async () => {
    await proxy?.close();
    await app?.close();
    await broker?.stop();
  });

  /** Runs `fn` as work of tenant `id`, as a request or a job of that tenant would. */
  const as = async <T>(id: string, fn: () => Promise<T>): Promise<T> =>
    admission.run(await admission.admit(id, { source: 'the test' }), fn);
  const add = (note: Note, options?: TenantMessageOptions) =>
    lastValueFrom(client.send<{ tenant: string }>('notes.add', note, options));
  const count = async (id: string) =>
    Number(
      await (await tenants.db(id)).fetchValue<number>('SELECT count(*)::int FROM {{tables.notes}}'),
    );

  it("runs each handler in the sender's tenant, two tenants interleaved", async () => {
    const before = [await count('t1'), await count('t2')];
    const replies = await Promise.all(
      Array.from({ length: 20 }, (_, i) => {
        const id = i % 2 ? 't2' : 't1';
        return as(id, () => add({ text: `n${i}` })).then((reply) => [id, reply.tenant]);
      }),
    );
    for (const [sent, served] of replies) expect(served).toBe(sent);
    expect(seen.guarded.slice(-20).sort()).toEqual(replies.map(([sent]) => sent).sort());
    expect([await count('t1'), await count('t2')]).toEqual([before[0] + 10, before[1] + 10]);
    expect(seen.authorized).toContain('t1 rpc');
  });

  it('ignores a payload that claims another tenant', async () => {
    const before = await count('t2');
    const claim = { 'x-tenant-id': 't2' };
    const hostile = { text: 'hostile', tenantId: 't2', headers: claim, metadata: claim };
    await expect(as('t1', () => add(hostile))).resolves.toEqual({ tenant: 't1' });
    expect(await count('t2')).toBe(before);
    // With no tenant in the metadata, the payload's claim does not stand in for it either.
    await expect(add(hostile, { withoutTenant: true })).rejects.toMatchObject({
      reason: 'TenantRequiredError',
    });
    expect(await count('t2')).toBe(before);
  });

  it('refuses a message for a suspended, unknown or refused tenant with a typed error', async () => {
    const refusal = (tenantId: string) => add({ text: 'refused' }, { tenantId });
    await expect(refusal('off')).rejects.toEqual(
      new TenantMessageRefusedError('TenantSuspendedError', 'Tenant "off" is suspended.', 'off'),
    );
    await expect(refusal('off')).rejects.toBeInstanceOf(TenantMessageRefusedError);
    await expect(refusal('nope')).rejects.toMatchObject({ reason: 'TenantNotFoundError' });
    await expect(refusal('denied')).rejects.toMatchObject({ reason: 'TenantAccessDeniedError' });
    await expect(refusal('../x')).rejects.toMatchObject({ reason: 'InvalidTenantIdError' });
  });

  it('refuses a message that names no tenant; the client sends none without being told', async () => {
    await expect(add({ text: 'none' }, { withoutTenant: true })).rejects.toMatchObject({
      name: 'TenantMessageRefusedError',
      reason: 'TenantRequiredError',
    });
    await expect(add({ text: 'none' })).rejects.toBeInstanceOf(MessageWithoutTenantError);
    // The wrapped proxy is stamped too: used directly, it fails the same way.
    await expect(lastValueFrom(proxy.send('notes.add', { text: 'raw' }))).rejects.toBeInstanceOf(
      MessageWithoutTenantError,
    );
    await expect(
      as('t1', () => lastValueFrom(proxy.send('notes.add', { text: 'raw' }))),
    ).resolves.toEqual({ tenant: 't1' });
  });

  it('runs a @NoTenant() handler without a tenant, named or not', async () => {
    const health = (options?: TenantMessageOptions) =>
      lastValueFrom(client.send('health', {}, options));
    await expect(health({ withoutTenant: true })).resolves.toEqual({ tenant: null });
    await expect(as('t1', () => health())).resolves.toEqual({ tenant: null });
  });

  it('delivers events in their tenant, and logs and drops events it cannot serve', async () => {
    const delivered = new Promise<string | undefined>((resolve) =>
      seen.events.set('event-t2', resolve),
    );
    await as('t2', () => lastValueFrom(client.emit('notes.added', { text: 'event-t2' })));
    await expect(delivered).resolves.toBe('t2');

    const reached: unknown[] = [];
    seen.events.set('dropped', (tenant) => reached.push(tenant));
    await lastValueFrom(
      client.emit('notes.added', { text: 'dropped', tenantId: 't1' }, { withoutTenant: true }),
    );
    await logger.waitFor(/Dropped event "notes.added": This route needs a tenant/);
    await lastValueFrom(client.emit('notes.added', { text: 'dropped' }, { tenantId: 'off' }));
    await logger.waitFor(/Dropped event "notes.added": Tenant "off" is suspended/);
    // Each was dropped before its handler, which never ran.
    expect(reached).toEqual([]);
    seen.events.delete('dropped');
  });

  // Last: the app is draining from here on.
  it('refuses messages once a graceful shutdown has begun', async () => {
    const drained = app.get(DrainController, { strict: false }).drain(5_000);
    await expect(as('t1', () => add({ text: 'late' }))).rejects.toBeDefined();
    await expect(add({ text: 'late' }, { tenantId: 't1' })).rejects.toMatchObject({
      reason: 'DatabaseShuttingDownError',
    });
    await drained;
  });
}
