// A database that cannot be reached (server down, a closed port, a wrong password, an unknown
// database) is one typed error on every path: the module's start-up with named schemas or with
// tenancy, the CLI, and requests, which answer 503 with Retry-After through
// DatabaseExceptionFilter instead of 500.
import { Controller, Get, Injectable, Module, type INestApplication } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { Test, type TestingModule } from '@nestjs/testing';
import {
  DatabaseConnectionError,
  DatabaseExceptionFilter,
  DatabaseModule,
  InjectTenantDb,
  InvalidOptionsError,
  SchemaDb,
  TenantService,
} from '../../../lib/index.js';
import { TenantRegistry } from '../../../lib/tenancy/index.js';
import { openTenancy } from '../../../lib/cli/tenancy-cli.js';
import { adminPool, useTestDatabase } from '../../support/database.js';
import { useMigrationFolders } from '../../support/migrations.js';
import { closedPort, startSilentProxy } from '../../support/tcp-proxy.js';

const FILES = { '001_notes.sql': 'CREATE TABLE {{tables.notes}} (id int);' };
const quiet = { log: () => undefined, warn: () => undefined, error: () => undefined };

describe('a database that cannot be reached', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let migrations: string;

  beforeAll(async () => {
    migrations = await folder(FILES);
  });

  /** The test database's URL, broken as `kind` says (a password put in must never show). */
  async function target(kind: 'a closed port' | 'a wrong password' | 'an unknown database') {
    const url = new URL(database.current.url);
    if (kind === 'a closed port') url.port = String(await closedPort());
    if (kind === 'a wrong password') url.password = 'Sekr3t-Wr0ng';
    if (kind === 'an unknown database') url.pathname = '/nodb';
    return url;
  }

  /** What `forRoot(options)` fails with, while compiling or starting (`undefined`: nothing). */
  async function boot(options: Parameters<typeof DatabaseModule.forRoot>[0]): Promise<unknown> {
    let moduleRef: TestingModule | undefined;
    try {
      moduleRef = await Test.createTestingModule({ imports: [DatabaseModule.forRoot(options)] })
        .setLogger(quiet)
        .compile();
      await moduleRef.init();
      return undefined;
    } catch (err) {
      return err;
    } finally {
      await moduleRef?.close();
    }
  }

  const cases = [
    ['a closed port', /Could not connect to PostgreSQL at .*ECONNREFUSED/],
    ['a wrong password', /refused the connection: password authentication failed/],
    ['an unknown database', /refused the connection: database "nodb" does not exist/],
  ] as const;

  it.each(cases)(
    'with %s, start-up fails with DatabaseConnectionError naming user@host:port/db, with schemas, with tenancy and in the CLI',
    async (kind, reason) => {
      const url = await target(kind);
      const named = `${decodeURIComponent(url.username)}@${url.hostname}:${url.port}${url.pathname}`;
      const connection = url.toString();
      const errors = {
        schemas: await boot({ connection, schemas: { app: { migrations } } }),
        tenancy: await boot({
          connection,
          tenancy: { migrations, registrySchema: 'down_reg', interceptor: false },
        }),
        cli: await openTenancy({ connection, tenancy: { migrations } }).then(
          async (opened) => {
            await opened.end();
            return undefined;
          },
          (err: unknown) => err,
        ),
      };
      for (const [path, error] of Object.entries(errors)) {
        expect({ path, error }).toEqual({ path, error: expect.any(DatabaseConnectionError) });
        const { message } = error as Error;
        expect(message).toContain(named);
        expect(message).toMatch(reason);
        expect(message).not.toContain('Sekr3t');
      }
    },
  );

  it('refuses a URL without a known scheme before connecting, on every boot path', async () => {
    for (const connection of ['postgress://app:pw@127.0.0.1/app', '127.0.0.1:5432/app']) {
      for (const error of [
        await boot({ connection, schemas: { app: { migrations } } }),
        await boot({ connection, tenancy: { migrations, interceptor: false } }),
        await openTenancy({ connection, tenancy: { migrations } }).catch((err: unknown) => err),
      ]) {
        expect(error).toBeInstanceOf(InvalidOptionsError);
        expect((error as Error).message).toMatch(/must start with postgres:\/\//);
      }
    }
  });

  describe('over HTTP, while the server is down', () => {
    @Injectable()
    class NotesService {
      constructor(@InjectTenantDb() private readonly db: SchemaDb) {}
      count() {
        return this.db.fetchValue('SELECT count(*) FROM {{tables.notes}}');
      }
      slow() {
        return this.db.fetchValue('SELECT count(*) FROM {{tables.notes}}, pg_sleep(30)');
      }
    }

    @Controller('notes')
    class NotesController {
      constructor(private readonly notes: NotesService) {}
      @Get() count() {
        return this.notes.count();
      }
      /** A query still running when the server goes away. */
      @Get('slow') slow() {
        return this.notes.slow();
      }
    }

    let app: INestApplication | undefined;
    afterEach(async () => {
      await app?.close();
      app = undefined;
    });

    it('answers tenant routes 503 with Retry-After, not 500, whether a query under way, a new query or the tenant lookup fails', async () => {
      // The app reaches PostgreSQL through a proxy; closing it is the server going away: every
      // connection cut, every new one refused.
      const proxy = await startSilentProxy(database.current.url);
      @Module({
        imports: [
          DatabaseModule.forRoot({
            connection: proxy.url,
            pool: { acquireTimeoutMs: 10_000 },
            tenancy: { migrations, registrySchema: 'http_down_reg', maxStalenessMs: 1_000 },
          }),
        ],
        controllers: [NotesController],
        providers: [NotesService, { provide: APP_FILTER, useClass: DatabaseExceptionFilter }],
      })
      class AppModule {}
      const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
      app = moduleRef.createNestApplication({ logger: false });
      await app.listen(0, '127.0.0.1');
      const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
      await app.get(TenantService).create('t1');
      const get = async (path = '/notes') => {
        const res = await fetch(`${url}${path}`, { headers: { 'x-tenant-id': 't1' } });
        return {
          status: res.status,
          retryAfter: res.headers.get('retry-after'),
          body: await res.json(),
        };
      };
      expect((await get()).status).toBe(200);
      const inFlight = get('/notes/slow');
      const admin = adminPool(database.current.url, 1);
      try {
        const running = `SELECT 1 FROM pg_stat_activity
          WHERE datname = current_database() AND state = 'active' AND query LIKE '%pg_sleep(30)%'
            AND pid <> pg_backend_pid()`;
        while (!(await admin.query(running)).rowCount);
      } finally {
        await admin.end();
      }

      await proxy.close();
      // The query under way loses its connection.
      expect(await inFlight).toEqual({
        status: 503,
        retryAfter: '1',
        body: {
          statusCode: 503,
          error: 'DatabaseConnectionError',
          message: expect.stringMatching(/^The connection to PostgreSQL was lost \(.*\); retry/),
        },
      });
      const down = {
        status: 503,
        retryAfter: '1',
        body: {
          statusCode: 503,
          error: 'DatabaseConnectionError',
          message: expect.stringMatching(/^Could not connect to PostgreSQL at .*:\d+\//),
        },
      };
      // The tenant is known: its query cannot get a connection.
      expect(await get()).toEqual(down);
      // Once the registry cannot prove its view current, the tenant's lookup itself needs the
      // database, and fails the same way.
      const registry = app.get(TenantRegistry);
      while ((registry.syncState().lagMs ?? Infinity) <= 1_000) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(await get()).toEqual(down);
    });
  });
});
