import {
  Controller,
  Get,
  Injectable,
  Module,
  type MiddlewareConsumer,
  type NestModule,
} from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import pg from 'pg';
import {
  DatabaseModule,
  SchemaDb,
  TenantAlreadyExistsError,
  TenantNotFoundError,
  TenantMiddleware,
  TenantService,
  InjectTenantDb,
  type TenancyOptions,
} from '../../../lib/index.js';
import { TenantRegistry } from '../../../lib/tenancy/index.js';
import { adminPool, useTestDatabase } from '../../support/database.js';
import { useMigrationFolders, write } from '../../support/migrations.js';
import { jest } from '@jest/globals';

const FILES = {
  '001_projects.sql': 'CREATE TABLE {{tables.projects}} (id serial PRIMARY KEY, name text);',
};

/** Lets the test hold a request between resolving its tenant and querying its schema. */
const gate = { entered: () => undefined as void, open: Promise.resolve() };

@Injectable()
class SlowProjects {
  constructor(@InjectTenantDb() private readonly db: SchemaDb) {}
  async list() {
    gate.entered();
    await gate.open;
    return this.db.fetchAll('SELECT * FROM {{tables.projects}}');
  }
}

@Controller('projects')
class SlowProjectsController {
  constructor(private readonly projects: SlowProjects) {}
  @Get() list() {
    return this.projects.list();
  }
}

// These steps start processes and wait on other sessions; a busy machine outlasts Jest's default.
jest.setTimeout(120_000);

describe('lifecycle races: migrations, create and drop never leave a schema without a row', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;
  const apps: TestingModule[] = [];

  async function boot(tenancy: TenancyOptions) {
    const app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          pool: { max: 6 },
          migrateOnStartup: false,
          tenancy: { interceptor: false, maxStalenessMs: 1_000, ...tenancy },
        }),
      ],
    }).compile();
    apps.push(app);
    await app.init();
    return { app, tenants: app.get(TenantService), registry: app.get(TenantRegistry) };
  }

  /** Schemas with the prefix that have no registry row, and rows without their schema. */
  async function orphans(registrySchema: string, prefix: string) {
    const { rows } = await admin.query<{ schema: string | null; id: string | null }>(
      `SELECT n.nspname AS schema, t.id
         FROM (SELECT nspname FROM pg_namespace WHERE nspname LIKE $1) n
         FULL JOIN ${registrySchema}.tenants t ON t.schema_name = n.nspname
        WHERE n.nspname IS NULL OR t.id IS NULL`,
      [`${prefix}%`],
    );
    return rows;
  }

  beforeAll(() => {
    admin = adminPool(database.current.url);
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
  });
  afterAll(() => admin.end());

  it('migrateAll skips and reports a tenant dropped while the fleet migrates, and never re-creates it', async () => {
    const migrations = await folder(FILES);
    const { tenants } = await boot({ migrations, registrySchema: 'race_fleet' });
    await tenants.create('m1');
    await tenants.create('m2');
    // The new file waits for a lock the test holds: the run stays busy with m1 until m2 is
    // dropped, however slow the machine (a fixed sleep here raced the drop under load).
    await write(migrations, { '002_gated.sql': 'SELECT pg_advisory_xact_lock_shared(4242);' });
    const gate = await admin.connect();
    let summary: Awaited<ReturnType<typeof tenants.migrateAll>>;
    try {
      await gate.query('SELECT pg_advisory_lock(4242)');
      const run = tenants.migrateAll({ concurrency: 1 });
      // Wait until the run has read its list and is busy with m1, then drop m2 under it.
      for (;;) {
        const busy = await admin.query(
          `SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
              AND wait_event_type = 'Lock' AND query LIKE '%pg_advisory_xact_lock_shared(4242)%'`,
        );
        if (busy.rowCount) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await tenants.drop('m2');
      await gate.query('SELECT pg_advisory_unlock(4242)');
      summary = await run;
    } finally {
      gate.release();
    }
    expect(summary.applied.map((a) => a.tenantId)).toEqual(['m1']);
    expect(summary.gone).toEqual(['m2']);
    expect(summary.failed).toEqual([]);
    expect(await orphans('race_fleet', 'tenant_m')).toEqual([]);
    // The id is free: nothing blocks creating it again.
    expect((await tenants.create('m2')).status).toBe('active');
  });

  it('migrations do not create a schema for a registry row that has none', async () => {
    const migrations = await folder(FILES);
    const { tenants } = await boot({ migrations, registrySchema: 'race_noschema' });
    await admin.query(
      "INSERT INTO race_noschema.tenants (id, schema_name, status) VALUES ('ghost', 'tenant_ghost', 'active')",
    );
    const summary = await tenants.migrateAll();
    expect(summary.failed).toEqual([
      { tenantId: 'ghost', error: expect.stringMatching(/"tenant_ghost" does not exist/) },
    ]);
    const exists = await admin.query("SELECT 1 FROM pg_namespace WHERE nspname = 'tenant_ghost'");
    expect(exists.rowCount).toBe(0);
  });

  it('create racing drop of the same id ends consistent, with typed errors only', async () => {
    const migrations = await folder(FILES);
    const a = await boot({ migrations, registrySchema: 'race_cd' });
    const b = await boot({ migrations, registrySchema: 'race_cd' });
    for (let i = 0; i < 30; i++) {
      const id = `r${i}`;
      const [created, dropped] = await Promise.allSettled([
        a.tenants.create(id),
        i % 2 === 0
          ? b.tenants.drop(id)
          : (async () => {
              await new Promise((resolve) => setTimeout(resolve, i % 5));
              return b.tenants.drop(id);
            })(),
      ]);
      expect(
        created.status === 'fulfilled' || created.reason instanceof TenantAlreadyExistsError,
      ).toBe(true);
      if (dropped.status === 'rejected') expect(dropped.reason).toBeInstanceOf(TenantNotFoundError);
      const row = await admin.query('SELECT status FROM race_cd.tenants WHERE id = $1', [id]);
      const expected = dropped.status === 'fulfilled' ? [] : [{ status: 'active' }];
      expect({ id, rows: row.rows }).toEqual({ id, rows: expected });
    }
    expect(await orphans('race_cd', 'tenant_r')).toEqual([]);
  });

  it('create reports the tenant it created even when a drop removes it right after', async () => {
    const migrations = await folder(FILES);
    const a = await boot({ migrations, registrySchema: 'race_brief' });
    const b = await boot({ migrations, registrySchema: 'race_brief' });
    // Once create has committed, it reads its row back: a drop that waited for the tenant's lock
    // (as in the race above) finishes first. (The registry re-reads announced changes through
    // the same method: only the provisioner's call is held.)
    const refresh = a.registry.refresh.bind(a.registry);
    a.registry.refresh = async (id) => {
      if (!/TenantProvisioner/.test(new Error().stack ?? '')) return refresh(id);
      a.registry.refresh = refresh;
      await b.tenants.drop(id);
      return refresh(id);
    };
    const info = await a.tenants.create('brief');
    expect(info).toMatchObject({ id: 'brief', schema: 'tenant_brief', status: 'active' });
    expect(await a.tenants.get('brief')).toBeNull();
    expect(await orphans('race_brief', 'tenant_brief')).toEqual([]);
  });

  it('a query racing a drop of its tenant is a TenantNotFoundError, not a missing-table error', async () => {
    const migrations = await folder(FILES);
    const { tenants } = await boot({ migrations, registrySchema: 'race_query' });
    await tenants.create('victim');
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const inside = new Promise<void>((resolve) => (started = resolve));
    const job = tenants.run('victim', async () => {
      const db: SchemaDb = await tenants.db('victim');
      started();
      await gate;
      return db.fetchAll('SELECT * FROM {{tables.projects}}');
    });
    await inside;
    await tenants.drop('victim');
    release();
    await expect(job).rejects.toBeInstanceOf(TenantNotFoundError);
  });

  it("drop waits for the tenant's in-flight work, then ends what outlives the wait", async () => {
    const migrations = await folder(FILES);
    const { tenants } = await boot({ migrations, registrySchema: 'race_wait' });
    await tenants.create('busy');
    const holder = await admin.connect();
    holder.on('error', () => undefined); // its session is about to be terminated
    try {
      // A transaction that read the tenant's table and then went idle: it would never end.
      await holder.query('BEGIN');
      await holder.query('SELECT * FROM tenant_busy.projects');
      await tenants.drop('busy');
      await expect(holder.query('SELECT 1')).rejects.toThrow();
    } finally {
      holder.release(true);
    }
    expect(await orphans('race_wait', 'tenant_busy')).toEqual([]);
    expect(await tenants.get('busy')).toBeNull();
  });

  it('a drop waiting on a lock survives its backend being terminated, and repair finishes it', async () => {
    const migrations = await folder(FILES);
    const { tenants } = await boot({ migrations, registrySchema: 'race_kill' });
    await tenants.create('stuck');
    const holder = await admin.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE tenant_stuck.projects IN ACCESS SHARE MODE');
      const dropping = tenants.drop('stuck');
      dropping.catch(() => undefined);
      let pid: number | undefined;
      while (pid === undefined) {
        const { rows } = await admin.query<{ pid: number }>(
          // This database only: other test files on the server have drops waiting on locks too.
          "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'nestjs-pg-tenancy:drop' AND wait_event_type = 'Lock'",
        );
        pid = rows[0]?.pid;
        if (pid === undefined) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await admin.query('SELECT pg_terminate_backend($1::int)', [pid]);
      await expect(dropping).rejects.toThrow(/terminat/i);
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      holder.release();
    }
    // Refused from the moment it was marked, visible to operators, and finished by repair.
    await expect(tenants.db('stuck')).rejects.toBeInstanceOf(TenantNotFoundError);
    expect((await tenants.list()).map((t) => [t.id, t.status])).toEqual([['stuck', 'dropping']]);
    await expect(tenants.create('stuck')).rejects.toThrow(/being dropped.*tenants repair stuck/);
    expect(await tenants.repair('stuck')).toMatchObject({
      before: 'dropping',
      after: null,
      action: 'finished-drop',
    });
    expect(await orphans('race_kill', 'tenant_stuck')).toEqual([]);
    expect(await tenants.list()).toEqual([]);
  });

  it('a drop whose backend is terminated between two attempts says so', async () => {
    const migrations = await folder(FILES);
    const { tenants } = await boot({ migrations, registrySchema: 'race_pause' });
    await tenants.create('paused');
    const holder = await admin.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE tenant_paused.projects IN ACCESS SHARE MODE');
      const dropping = tenants.drop('paused');
      dropping.catch(() => undefined);
      const drop = `datname = current_database() AND application_name = 'nestjs-pg-tenancy:drop'`;
      // Seen waiting for the lock, then terminated while it is idle: between two attempts.
      while (
        !(
          await admin.query(
            `SELECT 1 FROM pg_stat_activity WHERE ${drop} AND wait_event_type = 'Lock'`,
          )
        ).rowCount
      );
      while (
        !(
          await admin.query(
            `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE ${drop} AND state = 'idle'`,
          )
        ).rowCount
      );
      await expect(dropping).rejects.toThrow(/terminating connection/);
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      holder.release();
    }
    expect((await tenants.list()).map((t) => [t.id, t.status])).toEqual([['paused', 'dropping']]);
  });

  it.each([
    ['the interceptor', {}],
    ['the middleware alone (interceptor: false)', { interceptor: false }],
  ])(
    'an HTTP request racing a drop of its tenant is answered 404, not 500, with %s',
    async (_mount, tenancy: Partial<TenancyOptions>) => {
      const migrations = await folder(FILES);
      @Module({
        imports: [
          DatabaseModule.forRoot({
            connection: database.current.url,
            pool: { max: 4 },
            tenancy: { migrations, registrySchema: 'race_http', ...tenancy },
          }),
        ],
        controllers: [SlowProjectsController],
        providers: [SlowProjects],
      })
      class AppModule implements NestModule {
        configure(consumer: MiddlewareConsumer) {
          if (tenancy.interceptor === false) consumer.apply(TenantMiddleware).forRoutes('*');
        }
      }
      const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
      apps.push(moduleRef);
      const app = moduleRef.createNestApplication({ logger: false });
      await app.listen(0, '127.0.0.1');
      try {
        const tenants = app.get(TenantService);
        await tenants.create('webby');
        let open!: () => void;
        gate.open = new Promise<void>((resolve) => (open = resolve));
        const entered = new Promise<void>((resolve) => (gate.entered = resolve));
        const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
        const response = fetch(`${url}/projects`, { headers: { 'x-tenant-id': 'webby' } });
        await entered;
        await tenants.drop('webby');
        open();
        const res = await response;
        expect(res.status).toBe(404);
        expect(await res.json()).toMatchObject({ message: 'Unknown tenant "webby".' });
      } finally {
        await app.close();
      }
    },
  );
});
