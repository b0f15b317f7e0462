import {
  Controller,
  Get,
  Injectable,
  Post,
  type INestApplication,
  type INestApplicationContext,
} from '@nestjs/common';
import { Test } from '@nestjs/testing';
import net from 'node:net';
import pg from 'pg';
import { Registry } from 'prom-client';
import {
  DatabaseModule,
  getSchemaDbToken,
  InjectSchemaDb,
  NoHealthyReplicaError,
  ReplicaWriteError,
  SchemaDb,
  TenantService,
} from '../../../../lib/index.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseMonitor, type ReplicaStatus } from '../../../../lib/observability/index.js';
import { DrainController } from '../../../../lib/advanced.js';
import {
  startEmbeddedReplication,
  type EmbeddedReplication,
} from '../../../../lib/testing/index.js';
import { adminPool } from '../../../support/database.js';

// A primary and a streaming replica of this file's own (not the shared test server), so the
// replica can be stopped and its replay paused.
let pair: EmbeddedReplication;
let admin: pg.Pool;

beforeAll(async () => {
  // synchronous_commit on: WAL is sent at commit, so the replica follows within milliseconds.
  pair = await startEmbeddedReplication({ settings: { synchronous_commit: 'on' } });
  admin = adminPool(pair.primary.url);
  await admin.query('CREATE SCHEMA app; CREATE TABLE app.items (id serial PRIMARY KEY, v text)');
}, 120_000);

afterAll(async () => {
  await admin?.end();
  await pair?.stop();
});

async function boot(readYourWrites: 'primary' | 'lsn' = 'primary') {
  const moduleRef = await Test.createTestingModule({
    imports: [
      DatabaseModule.forRoot({
        connection: pair.primary.url,
        schemas: { app: {} },
        replicas: {
          connections: [pair.replica.url],
          checkIntervalMs: 50,
          maxLagMs: 300,
          readYourWrites,
        },
      }),
    ],
  }).compile();
  const app = await moduleRef.init();
  return {
    app,
    db: app.get<SchemaDb>(getSchemaDbToken('app')),
    drain: app.get(DrainController),
    monitor: app.get(DatabaseMonitor),
  };
}

/** Waits (polling the monitor) until the replica reaches `state`. */
async function until(monitor: DatabaseMonitor, state: ReplicaStatus['state'], ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const [replica] = monitor.getReplicas()!;
    if (replica.state === state) return replica;
    if (Date.now() > deadline) {
      throw new Error(
        `replica still ${replica.state} (wanted ${state}): ${JSON.stringify(replica)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Runs `fn` with the replica's WAL replay paused; `resume()` resumes it early. */
async function withReplayPaused<T>(fn: (resume: () => Promise<unknown>) => Promise<T>): Promise<T> {
  const replica = adminPool(pair.replica.url, 1);
  const resume = () => replica.query('SELECT pg_wal_replay_resume()');
  try {
    await replica.query('SELECT pg_wal_replay_pause()');
    return await fn(resume);
  } finally {
    await resume().catch(() => undefined);
    await replica.end();
  }
}

const onReplica = (db: SchemaDb) => db.fetchValue<boolean>('SELECT pg_is_in_recovery()');

describe('read replicas', () => {
  let app: INestApplicationContext;
  let db: SchemaDb;
  let drain: DrainController;
  let monitor: DatabaseMonitor;

  beforeAll(async () => {
    ({ app, db, drain, monitor } = await boot());
  });
  afterAll(async () => {
    await app?.close();
  });

  it('sends replica() reads to the replica and everything else to the primary', async () => {
    expect(await onReplica(db.replica())).toBe(true);
    expect(await db.replica().fetchValue('SELECT inet_server_port()')).toBe(pair.replica.port);
    expect(await onReplica(db)).toBe(false);
    expect(monitor.getReplicas()).toEqual([
      expect.objectContaining({ state: 'up', lagMs: expect.any(Number) }),
    ]);
  });

  it('keeps reads of a transaction in the transaction, on the primary', async () => {
    await db.transaction(async (tx) => {
      expect(await onReplica(db.replica())).toBe(false);
      expect(tx.replica()).toBe(tx);
    });
  });

  it('refuses writes sent through replica() with a typed error', async () => {
    await expect(
      db.replica().execute("INSERT INTO {{tables.items}} (v) VALUES ('x')"),
    ).rejects.toThrow(ReplicaWriteError);
  });

  it('reads its own writes within a job while replay is paused, and the lag bound excludes the replica', async () => {
    await withReplayPaused(async (resume) => {
      const seen = await drain.admit(async () => {
        const { id } = (await db.fetchOne<{ id: number }>(
          "INSERT INTO {{tables.items}} (v) VALUES ('paused') RETURNING id",
        ))!;
        return db.replica().fetchValue('SELECT v FROM {{tables.items}} WHERE id = $1', [id]);
      });
      expect(seen).toBe('paused');
      // Another job that wrote nothing reads the replica, which has not replayed the row...
      const before = await drain.admit(() =>
        db.replica().fetchValue<string>("SELECT count(*) FROM {{tables.items}} WHERE v = 'paused'"),
      );
      expect(before).toBe('0');
      // ...until it lags more than maxLagMs: then it is skipped and reads go to the primary.
      const lagging = await until(monitor, 'lagging');
      expect(lagging.lagMs).toBeGreaterThan(300);
      expect(await onReplica(db.replica())).toBe(false);
      await resume();
      await until(monitor, 'up');
      expect(await onReplica(db.replica())).toBe(true);
      expect(
        await db.replica().fetchValue("SELECT count(*) FROM {{tables.items}} WHERE v = 'paused'"),
      ).toBe('1');
    });
  });

  it.each([
    ['copyFrom', (d: SchemaDb) => d.copyFrom('items', ['v'], [['bulk:copyFrom']])],
    ['insertMany', (d: SchemaDb) => d.insertMany('items', [{ v: 'bulk:insertMany' }])],
  ])('counts a %s load as a write: the next replica read sees its rows', async (how, load) => {
    await withReplayPaused(async () => {
      const seen = await drain.admit(async () => {
        await load(db);
        return db
          .replica()
          .fetchValue('SELECT count(*) FROM {{tables.items}} WHERE v = $1', [`bulk:${how}`]);
      });
      expect(seen).toBe('1');
    });
  });

  it('serves every read while the replica stops, and sends reads back when it rejoins', async () => {
    let stop = false;
    let failures = 0;
    let reads = 0;
    const worker = async () => {
      while (!stop) {
        try {
          await db.replica().fetchValue('SELECT count(*) FROM {{tables.items}}');
          reads++;
        } catch {
          failures++;
        }
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      await pair.stopReplica();
      const down = await until(monitor, 'down');
      expect(down.error).toEqual(expect.any(String));
      const during = reads;
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(reads).toBeGreaterThan(during); // still served, by the primary
      expect(await onReplica(db.replica())).toBe(false);
      await pair.startReplica();
      await until(monitor, 'up');
    } finally {
      stop = true;
      await Promise.all(workers);
    }
    expect(failures).toBe(0);
    expect(await onReplica(db.replica())).toBe(true);
  }, 60_000);
});

describe("read replicas, readYourWrites: 'lsn'", () => {
  let app: INestApplicationContext;
  let db: SchemaDb;
  let drain: DrainController;

  beforeAll(async () => {
    ({ app, db, drain } = await boot('lsn'));
  });
  afterAll(async () => {
    await app?.close();
  });

  it('after a write, reads a replica that has replayed it, and the primary while none has', async () => {
    await withReplayPaused(async (resume) => {
      await drain.admit(async () => {
        await db.execute("INSERT INTO {{tables.items}} (v) VALUES ('lsn')");
        expect(await onReplica(db.replica())).toBe(false);
        expect(
          await db.replica().fetchValue("SELECT count(*) FROM {{tables.items}} WHERE v = 'lsn'"),
        ).toBe('1');
        await resume();
        // Once a health check has seen the replica replay past the write, reads go back to it.
        const deadline = Date.now() + 20_000;
        while (!(await onReplica(db.replica())) && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        expect(await onReplica(db.replica())).toBe(true);
        expect(
          await db.replica().fetchValue("SELECT count(*) FROM {{tables.items}} WHERE v = 'lsn'"),
        ).toBe('1');
      });
    });
  });
});

@Injectable()
class ItemsService {
  constructor(@InjectSchemaDb('app') readonly db: SchemaDb) {}
}

@Controller('items')
class ItemsController {
  constructor(private readonly items: ItemsService) {}
  @Post()
  async create() {
    const { db } = this.items;
    const { id } = (await db.fetchOne<{ id: number }>(
      "INSERT INTO {{tables.items}} (v) VALUES ('http') RETURNING id",
    ))!;
    const seen = await db
      .replica()
      .fetchValue('SELECT v FROM {{tables.items}} WHERE id = $1', [id]);
    return { seen, replica: await onReplica(db.replica()) };
  }
  @Get('where')
  async where() {
    return { replica: await onReplica(this.items.db.replica()) };
  }
}

describe('read replicas over HTTP: each request is a read-your-writes context', () => {
  let app: INestApplication;
  let url: string;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: pair.primary.url,
          schemas: { app: {} },
          replicas: { connections: [pair.replica.url], checkIntervalMs: 50 },
        }),
      ],
      controllers: [ItemsController],
      providers: [ItemsService],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.listen(0, '127.0.0.1');
    url = await app.getUrl();
  });
  afterAll(async () => {
    await app?.close();
  });

  it('reads the write of its own request, and other requests still read the replica', async () => {
    await withReplayPaused(async () => {
      const created = await (await fetch(`${url}/items`, { method: 'POST' })).json();
      expect(created).toEqual({ seen: 'http', replica: false });
      const other = await (await fetch(`${url}/items/where`)).json();
      expect(other).toEqual({ replica: true });
    });
  });
});

describe('read replicas with tenancy: a nested tenants.run() joins the job it runs in', () => {
  let app: INestApplicationContext;
  let tenants: TenantService;
  let folder: string;

  beforeAll(async () => {
    folder = await mkdtemp(join(tmpdir(), 'pgt-replica-tenants-'));
    await writeFile(
      join(folder, '001_notes.sql'),
      'CREATE TABLE {{tables.notes}} (id serial PRIMARY KEY, v text NOT NULL);',
    );
    const moduleRef = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: pair.primary.url,
          replicas: { connections: [pair.replica.url], checkIntervalMs: 50 },
          tenancy: { migrations: folder, registrySchema: 'replica_reg', interceptor: false },
        }),
      ],
    }).compile();
    app = await moduleRef.init();
    tenants = app.get(TenantService);
    await tenants.create('ta');
    await tenants.create('tb');
    // Both tenants' tables on the replica before its replay is paused.
    const replica = adminPool(pair.replica.url, 1);
    try {
      const ready =
        "SELECT to_regclass('tenant_ta.notes') IS NOT NULL AND to_regclass('tenant_tb.notes') IS NOT NULL AS ok";
      while (!(await replica.query<{ ok: boolean }>(ready)).rows[0].ok);
    } finally {
      await replica.end();
    }
  });
  afterAll(async () => {
    await app?.close();
    await rm(folder, { recursive: true, force: true });
  });

  const count = (db: SchemaDb, v: string) =>
    db.replica().fetchValue('SELECT count(*) FROM {{tables.notes}} WHERE v = $1', [v]);
  const insert = (db: SchemaDb, v: string) =>
    db.execute('INSERT INTO {{tables.notes}} (v) VALUES ($1)', [v]);

  it.each([
    ['the same tenant', 'ta'],
    ['another tenant', 'tb'],
  ])(
    'with %s: a write inside the nested run is read by the enclosing run, and the reverse',
    async (_label, inner) => {
      const ta = await tenants.db('ta');
      const other = await tenants.db(inner);
      await withReplayPaused(async () => {
        // Inner write, outer read.
        const outward = await tenants.run('ta', async () => {
          await tenants.run(inner, () => insert(other, `out-${inner}`));
          return count(other, `out-${inner}`);
        });
        expect(outward).toBe('1');
        // Outer write, inner read (of the outer tenant's table, and of its own).
        const inward = await tenants.run('ta', async () => {
          await insert(ta, `in-${inner}`);
          return tenants.run(inner, () =>
            Promise.all([count(ta, `in-${inner}`), count(other, `out-${inner}`)]),
          );
        });
        expect(inward).toEqual(['1', '1']);
      });
    },
  );

  it('keeps separate runs separate: a run that wrote nothing still reads the replica', async () => {
    const ta = await tenants.db('ta');
    await withReplayPaused(async () => {
      await tenants.run('ta', () => insert(ta, 'separate'));
      expect(await tenants.run('ta', () => count(ta, 'separate'))).toBe('0');
    });
  });
});

describe('read replicas, none reachable', () => {
  /** A loopback port nothing listens on. */
  async function deadPort(): Promise<number> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    return port;
  }

  async function bootDead(fallbackToPrimary: boolean) {
    const port = await deadPort();
    const registry = new Registry();
    const moduleRef = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: pair.primary.url,
          schemas: { app: {} },
          replicas: {
            connections: [`postgres://postgres@127.0.0.1:${port}/postgres`],
            checkIntervalMs: 50,
            fallbackToPrimary,
          },
          metrics: { prometheus: { registry } },
        }),
      ],
    }).compile();
    const app = await moduleRef.init();
    return { app, db: app.get<SchemaDb>(getSchemaDbToken('app')), registry };
  }

  it('reads the primary by default, and shows the replica down in the metrics', async () => {
    const { app, db, registry } = await bootDead(true);
    try {
      expect(await db.replica().fetchValue('SELECT pg_is_in_recovery()')).toBe(false);
      const metrics = await registry.metrics();
      expect(metrics).toMatch(/pg_tenancy_replica_up\{replica="[^"]+",state="down"\} 0/);
      expect(metrics).not.toMatch(/pg_tenancy_replica_lag_seconds\{/);
    } finally {
      await app.close();
    }
  });

  it('with fallbackToPrimary: false, fails the read with NoHealthyReplicaError', async () => {
    const { app, db } = await bootDead(false);
    try {
      const read = db.replica().fetchValue('SELECT 1');
      await expect(read).rejects.toBeInstanceOf(NoHealthyReplicaError);
      await expect(read).rejects.toThrow(/down|unknown/);
      // Writes and the manager itself still use the primary.
      expect(await db.fetchValue('SELECT 1')).toBe(1);
    } finally {
      await app.close();
    }
  });
});
