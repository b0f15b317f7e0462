import { mkdtemp, rm, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Controller, Get, Injectable, type INestApplication } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { Test } from '@nestjs/testing';
import { APP_FILTER } from '@nestjs/core';
import {
  DatabaseExceptionFilter,
  DatabaseModule,
  InjectSchemaDb,
  SchemaDb,
} from '../../../lib/index.js';
import { DatabaseHealthIndicator } from '../../../lib/terminus/index.js';
import { startEmbeddedPostgres, type EmbeddedPostgresServer } from '../../../lib/testing/index.js';
import { holdTransaction } from '../../support/hold.js';

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly db: DatabaseHealthIndicator,
  ) {}
  @Get()
  @HealthCheck()
  check() {
    return this.health.check([
      () =>
        // Generous ping timeout: on a starved machine a healthy ping can take seconds.
        this.db.isHealthy('database', {
          timeoutMs: 10_000,
          degradedAfterMs: 0,
          highUtilisation: 0.5,
        }),
    ]);
  }
}

@Injectable()
class HoldService {
  constructor(@InjectSchemaDb() readonly db: SchemaDb) {}
}

@Controller('work')
class WorkController {
  constructor(private readonly hold: HoldService) {}
  @Get()
  work() {
    return this.hold.db.fetchValue('SELECT 1');
  }
}

describe('health and HTTP error mapping', () => {
  // A server of this file's own, so it can be stopped and started again.
  let root: string;
  let server: EmbeddedPostgresServer;
  let app: INestApplication;
  let url: string;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'pgt-health-'));
    await chmod(root, 0o755);
    server = await startEmbeddedPostgres({ dataDir: join(root, 'data'), durable: false });
    const moduleRef = await Test.createTestingModule({
      imports: [
        TerminusModule,
        DatabaseModule.forRoot({
          connection: server.url,
          pool: { max: 2, acquireTimeoutMs: 2_000 },
        }),
      ],
      controllers: [HealthController, WorkController],
      providers: [
        DatabaseHealthIndicator,
        HoldService,
        { provide: APP_FILTER, useClass: DatabaseExceptionFilter },
      ],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.listen(0, '127.0.0.1');
    url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  });
  afterAll(async () => {
    await app?.close();
    await server?.stop();
    await rm(root, { recursive: true, force: true });
  });

  const health = async () => {
    const res = await fetch(`${url}/health`);
    return {
      status: res.status,
      body: (await res.json()) as {
        status: string;
        info?: unknown;
        error?: unknown;
        details: Record<string, { status: string; [key: string]: unknown }>;
      },
    };
  };

  it('reports up, down while PostgreSQL is stopped, and up again after it restarts', async () => {
    const up = await health();
    expect(up.status).toBe(200);
    expect(up.body.details.database).toMatchObject({ status: 'up', pool: { max: 2 } });

    await server.stop();
    const down = await health();
    expect(down.status).toBe(503);
    expect(down.body.details.database).toMatchObject({
      status: 'down',
      message: expect.stringMatching(/Database ping failed/),
    });

    server = await startEmbeddedPostgres({
      dataDir: join(root, 'data'),
      port: server.port,
      durable: false,
    });
    // The pool reconnects on its own; how soon depends on the machine, so wait for it (bounded).
    let again = await health();
    for (const deadline = Date.now() + 60_000; again.status !== 200 && Date.now() < deadline;) {
      again = await health();
    }
    expect(again.status).toBe(200);
    expect(again.body.details.database.status).toBe('up');
  }, 120_000);

  it('reports degraded while the pool stays highly utilised', async () => {
    const db = app.get(HoldService).db;
    const held = await holdTransaction(db);
    const degraded = await health();
    await held.release();
    expect(degraded.status).toBe(200);
    expect(degraded.body.details.database).toMatchObject({
      status: 'degraded',
      message: expect.stringMatching(/utilisation/),
    });
  });

  it('answers 503 with Retry-After when the pool is exhausted', async () => {
    const db = app.get(HoldService).db;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let ready = 0;
    let allIn!: () => void;
    const entered = new Promise<void>((resolve) => (allIn = resolve));
    const holders = [1, 2].map(() =>
      db.transaction(async () => {
        if (++ready === 2) allIn();
        await gate;
      }),
    );
    await entered;
    const res = await fetch(`${url}/work`);
    release();
    await Promise.all(holders);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(await res.json()).toMatchObject({ error: 'PoolAcquireTimeoutError' });
  });
});
