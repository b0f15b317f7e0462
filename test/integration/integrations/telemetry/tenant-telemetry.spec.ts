// The tenant id in logs and traces: TenantConsoleLogger adds `tenantId` to every line logged in a
// tenant context (JSON and text), TenantSpanProcessor sets `tenant.id` on spans started there.
// Spans come from the real OpenTelemetry trace SDK (@opentelemetry/sdk-trace-base).
import { jest } from '@jest/globals';
import { ConsoleLogger, Logger } from '@nestjs/common';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { Test, type TestingModule } from '@nestjs/testing';
import {
  DatabaseModule,
  getTenantDbToken,
  SchemaDb,
  TenantAdmission,
  TenantService,
} from '../../../../lib/index.js';
import { TenantConsoleLogger, TenantSpanProcessor } from '../../../../lib/observability/index.js';
import { useTestDatabase } from '../../../support/database.js';
import { useMigrationFolders } from '../../../support/migrations.js';

describe('tenant id in logs and spans', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let app: TestingModule;
  let tenants: TenantService;
  let admission: TenantAdmission;

  beforeAll(async () => {
    app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          slowQueryMs: 5,
          tenancy: {
            migrations: await folder({ '001_t.sql': 'CREATE TABLE {{tables.t}} (v text);' }),
            registrySchema: 'tel_reg',
            interceptor: false,
          },
        }),
      ],
    }).compile();
    await app.init();
    tenants = app.get(TenantService);
    admission = app.get(TenantAdmission);
    await tenants.create('l1');
    await tenants.create('l2');
  });
  afterAll(() => app?.close());

  /** Lines the logger writes while `fn` runs. */
  async function written(fn: () => Promise<void> | void): Promise<string[]> {
    const lines: string[] = [];
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      lines.push(String(chunk));
      return true;
    });
    try {
      await fn();
    } finally {
      spy.mockRestore();
    }
    return lines;
  }

  it('adds tenantId to JSON log records inside a tenant context, and only there', async () => {
    const logger = new TenantConsoleLogger(admission, { json: true, flattenParams: true });
    const lines = await written(async () => {
      await tenants.run('l1', () => logger.log('invoice sent', 'Billing'));
      logger.log('outside', 'Billing');
      await tenants.run('l1', () => logger.warn('over quota', { plan: 'pro' }, 'Billing'));
    });
    const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records.map((r) => [r.message, r.tenantId, r.context])).toEqual([
      ['invoice sent', 'l1', 'Billing'],
      ['outside', undefined, 'Billing'],
      ['over quota', 'l1', 'Billing'],
    ]);
    expect(records[2].plan).toBe('pro');
  });

  it("reaches the library's and the app's Logger instances once installed", async () => {
    Logger.overrideLogger(new TenantConsoleLogger(admission, { json: true }));
    try {
      const lines = await written(() =>
        tenants.run('l1', () => new Logger('Jobs').log('nightly export done')),
      );
      expect(JSON.parse(lines[0])).toMatchObject({
        message: 'nightly export done',
        params: { tenantId: 'l1' },
      });
    } finally {
      Logger.overrideLogger(true);
    }
  });

  it("gives the library's slow-query line the tenant as a structured field, whatever the logger", async () => {
    Logger.overrideLogger(new ConsoleLogger({ json: true }));
    try {
      const db = app.get<SchemaDb>(getTenantDbToken());
      const lines = await written(() =>
        tenants.run('l1', async () => {
          await db.execute('SELECT pg_sleep(0.02)');
        }),
      );
      const slow = lines
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((r) => String(r.message).includes('pg_sleep'));
      expect(slow).toEqual([
        expect.objectContaining({
          context: 'Database',
          message: expect.stringMatching(/^Slow query: \d+ ms on schema tenant_l1, tenant l1/),
          params: { tenantId: 'l1' },
        }),
      ]);
    } finally {
      Logger.overrideLogger(true);
    }
  });

  it('sets tenant.id on spans started in a tenant context, once it knows the source', async () => {
    const processor = new TenantSpanProcessor();
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({
      spanProcessors: [processor, new SimpleSpanProcessor(exporter)],
    });
    const tracer = provider.getTracer('tenant-telemetry.spec');
    const span = (name: string) => tracer.startSpan(name).end();
    await tenants.run('l1', () => span('before use'));
    processor.use(admission);
    await tenants.run('l1', () => span('inside l1'));
    await tenants.run('l2', () => span('inside l2'));
    span('outside');
    await provider.forceFlush();
    const seen = Object.fromEntries(
      exporter.getFinishedSpans().map((s) => [s.name, s.attributes['tenant.id']]),
    );
    expect(seen).toEqual({
      'before use': undefined,
      'inside l1': 'l1',
      'inside l2': 'l2',
      outside: undefined,
    });
    await provider.shutdown();
  });
});
