// A request still running on a tenant when another instance drops it: the drop cancels its
// statement (57014) or, for a transaction left idle, ends its session, after a grace period. The
// request then answers 404, as any request racing a drop does, not 500.
import { Controller, Get, Injectable, Module, type INestApplication } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import pg from 'pg';
import { jest } from '@jest/globals';
import {
  DatabaseModule,
  InjectTenantDb,
  SchemaDb,
  TenantNotFoundError,
  TenantService,
} from '../../../lib/index.js';
import { TenantRegistry } from '../../../lib/tenancy/index.js';
import { adminPool, useTestDatabase } from '../../support/database.js';
import { useMigrationFolders } from '../../support/migrations.js';

// The drop gives the tenant's work 5 s before cancelling it.
jest.setTimeout(60_000);

const FILES = {
  '001_projects.sql': 'CREATE TABLE {{tables.projects}} (id serial PRIMARY KEY, name text);',
};

/** Lets the test hold the idle transaction open until the drop has ended its session. */
const idle = { entered: () => undefined as void, resume: Promise.resolve() };

@Injectable()
class Projects {
  constructor(@InjectTenantDb() private readonly db: SchemaDb) {}
  sleep() {
    return this.db.fetchValue('SELECT count(*) FROM {{tables.projects}}, pg_sleep(20)');
  }
  idleInTransaction() {
    return this.db.transaction(async (tx) => {
      await tx.fetchAll('SELECT * FROM {{tables.projects}}');
      idle.entered();
      await idle.resume;
      return tx.fetchAll('SELECT * FROM {{tables.projects}}');
    });
  }
}

@Controller('projects')
class ProjectsController {
  constructor(private readonly projects: Projects) {}
  @Get('sleep') sleep() {
    return this.projects.sleep();
  }
  @Get('idle') idle() {
    return this.projects.idleInTransaction();
  }
}

describe('a request whose work a drop cancels', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;
  let web: INestApplication;
  let dropper: TestingModule;

  beforeAll(async () => {
    admin = adminPool(database.current.url);
    const migrations = await folder(FILES);
    const tenancy = { migrations, registrySchema: 'cancel_reg' };
    @Module({
      imports: [DatabaseModule.forRoot({ connection: database.current.url, tenancy })],
      controllers: [ProjectsController],
      providers: [Projects],
    })
    class WebModule {}
    web = (
      await Test.createTestingModule({ imports: [WebModule] }).compile()
    ).createNestApplication({ logger: false });
    await web.listen(0, '127.0.0.1');
    // Another instance, which drops the tenant.
    dropper = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          tenancy: { ...tenancy, interceptor: false },
        }),
      ],
    })
      .setLogger({ log: () => undefined, warn: () => undefined, error: () => undefined })
      .compile();
    await dropper.init();
  });
  afterAll(async () => {
    await web?.close();
    await dropper?.close();
    await admin?.end();
  });

  it('answers 404, not 500, for a running statement cancelled and for an idle transaction ended', async () => {
    const tenants = dropper.get(TenantService);
    await tenants.create('t2');
    // The web instance reads the new row now, not when its notice arrives.
    await web.get(TenantRegistry).refresh('t2');
    const url = (await web.getUrl()).replace('[::1]', '127.0.0.1');
    const get = async (path: string) => {
      const res = await fetch(`${url}${path}`, { headers: { 'x-tenant-id': 't2' } });
      return { status: res.status, body: await res.json() };
    };
    let resume!: () => void;
    idle.resume = new Promise<void>((resolve) => (resume = resolve));
    const entered = new Promise<void>((resolve) => (idle.entered = resolve));
    const sleeping = get('/projects/sleep');
    const idling = get('/projects/idle');
    await entered;
    // The sleep is running on the tenant's table before the drop starts.
    while (
      !(
        await admin.query(
          "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query LIKE '%pg_sleep(20)%' AND pid <> pg_backend_pid()",
        )
      ).rowCount
    );

    await tenants.drop('t2');
    resume();
    const notFound = {
      status: 404,
      body: { statusCode: 404, error: 'TenantNotFoundError', message: 'Unknown tenant "t2".' },
    };
    expect(await sleeping).toEqual(notFound);
    expect(await idling).toEqual(notFound);
  });

  it('is a TenantNotFoundError for a job run with tenants.run(), too', async () => {
    const tenants = dropper.get(TenantService);
    const web$ = web.get(TenantService);
    await tenants.create('t3');
    await web.get(TenantRegistry).refresh('t3');
    const db = await web$.db('t3');
    const job = web$.run('t3', () =>
      db.fetchValue('SELECT count(*) FROM {{tables.projects}}, pg_sleep(20)'),
    );
    job.catch(() => undefined);
    while (
      !(
        await admin.query(
          "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query LIKE '%pg_sleep(20)%' AND pid <> pg_backend_pid()",
        )
      ).rowCount
    );
    await tenants.drop('t3');
    await expect(job).rejects.toBeInstanceOf(TenantNotFoundError);
  });
});
