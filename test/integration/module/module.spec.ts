import { Injectable, Module, type DynamicModule } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import pg from 'pg';
import {
  DatabaseModule,
  getPoolToken,
  getSchemaDbToken,
  InjectPool,
  InjectSchemaDb,
  InvalidIdentifierError,
  InvalidOptionsError,
  SchemaDb,
  type DatabaseModuleOptions,
  type DatabaseOptionsFactory,
} from '../../../lib/index.js';
import { useTestDatabase } from '../../support/database.js';

/** Stands in for an app's config service (e.g. @nestjs/config's ConfigService). */
@Injectable()
class AppConfig {
  static url = '';
  readonly databaseUrl = AppConfig.url;
  readonly poolMax = 3;
}

@Module({ providers: [AppConfig], exports: [AppConfig] })
class AppConfigModule {}

@Injectable()
class DatabaseConfig implements DatabaseOptionsFactory {
  constructor(private readonly config: AppConfig) {}
  createDatabaseOptions(): DatabaseModuleOptions {
    return { connection: this.config.databaseUrl, pool: { max: this.config.poolMax } };
  }
}

@Injectable()
class OrdersService {
  constructor(
    @InjectSchemaDb('orders') readonly orders: SchemaDb,
    @InjectSchemaDb('users') readonly users: SchemaDb,
    @InjectSchemaDb() readonly plain: SchemaDb,
    @InjectPool() readonly pool: pg.Pool,
  ) {}
}

const schemas = { users: {}, orders: {} };

const configurations: Array<[string, () => DynamicModule]> = [
  [
    'forRoot',
    () => DatabaseModule.forRoot({ connection: AppConfig.url, pool: { max: 3 }, schemas }),
  ],
  [
    'forRootAsync with useFactory and inject',
    () =>
      DatabaseModule.forRootAsync({
        imports: [AppConfigModule],
        inject: [AppConfig],
        useFactory: (config: AppConfig) => ({
          connection: config.databaseUrl,
          pool: { max: config.poolMax },
        }),
        schemas,
      }),
  ],
  [
    'forRootAsync with useClass',
    () =>
      DatabaseModule.forRootAsync({
        imports: [AppConfigModule],
        useClass: DatabaseConfig,
        schemas,
      }),
  ],
  [
    'forRootAsync with useExisting',
    () =>
      DatabaseModule.forRootAsync({
        imports: [
          {
            module: class DatabaseConfigModule {},
            imports: [AppConfigModule],
            providers: [DatabaseConfig],
            exports: [DatabaseConfig],
          },
        ],
        useExisting: DatabaseConfig,
        schemas,
      }),
  ],
];

describe('DatabaseModule', () => {
  const database = useTestDatabase();
  beforeAll(() => {
    AppConfig.url = database.current.url;
  });

  describe.each(configurations)('%s', (_label, root) => {
    let app: TestingModule;
    let service: OrdersService;

    beforeAll(async () => {
      app = await Test.createTestingModule({
        imports: [root()],
        providers: [OrdersService],
      }).compile();
      await app.init();
      service = app.get(OrdersService);
    });
    afterAll(() => app.close());

    it('injects one manager per named schema and a default manager', () => {
      expect(service.orders).toBeInstanceOf(SchemaDb);
      expect(service.orders.schema).toBe('orders');
      expect(service.users.schema).toBe('users');
      expect(service.plain.schema).toBeNull();
      expect(app.get(getSchemaDbToken('orders'))).toBe(service.orders);
      expect(app.get(getPoolToken())).toBe(service.pool);
    });

    it('serves every schema from the one pool, sized by the options', async () => {
      const { pool, orders, users, plain } = service;
      expect(pool.options.max).toBe(3);
      // Hold three connections through three different managers at once.
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const started: Promise<void>[] = [];
      const running = [orders, users, plain].map((db) => {
        let ready!: () => void;
        started.push(new Promise<void>((resolve) => (ready = resolve)));
        return db.transaction(async () => {
          ready();
          await gate;
        });
      });
      await Promise.all(started);
      // All three managers' connections are counted by the one injected pool.
      expect(pool.totalCount).toBe(3);
      expect(pool.idleCount).toBe(0);
      release();
      await Promise.all(running);
      expect(pool.totalCount).toBe(3);
    });

    it('closes the pool and every connection socket before the application has closed', async () => {
      const other = await Test.createTestingModule({ imports: [root()] }).compile();
      await other.init();
      const pool = other.get<pg.Pool>(getPoolToken());
      const open = new Set<pg.Client>();
      pool.on('connect', (client: pg.Client) => {
        open.add(client);
        client.once('end', () => open.delete(client));
      });
      const users = other.get<SchemaDb>(getSchemaDbToken('users'));
      // Three connections at once, all idle in the pool when the application closes.
      await Promise.all([1, 2, 3].map(() => users.fetchValue('SELECT pg_sleep(0.05)')));
      expect(pool.totalCount).toBe(3);
      await other.close();
      expect(pool.ended).toBe(true);
      // pool.end() alone resolves while the sockets are still closing: a server stopped right
      // after close() would then cut connections the pool has already let go (57P01).
      expect(open.size).toBe(0);
      await other.close(); // a second close is harmless
    });
  });

  it('keeps named schemas with the same table apart through injection', async () => {
    const app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          schemas: { east: {}, west: {} },
        }),
      ],
    }).compile();
    try {
      const east = app.get<SchemaDb>(getSchemaDbToken('east'));
      const west = app.get<SchemaDb>(getSchemaDbToken('west'));
      for (const db of [east, west]) {
        await db.execute('CREATE SCHEMA IF NOT EXISTS {{schema}}');
        await db.execute('CREATE TABLE IF NOT EXISTS {{tables.customers}} (name text)');
      }
      await east.execute("INSERT INTO {{tables.customers}} VALUES ('e1')");
      await west.execute("INSERT INTO {{tables.customers}} VALUES ('w1'), ('w2')");
      expect(await east.fetchAll('SELECT name FROM {{tables.customers}}')).toEqual([
        { name: 'e1' },
      ]);
      expect(await west.fetchValue('SELECT count(*)::int FROM {{tables.customers}}')).toBe(2);
    } finally {
      await app.close();
    }
  });

  it('gives a feature module its own schema over the root pool', async () => {
    @Injectable()
    class AuditService {
      constructor(@InjectSchemaDb('audit') readonly db: SchemaDb) {}
    }
    @Module({
      imports: [DatabaseModule.forFeature({ name: 'audit' })],
      providers: [AuditService],
      exports: [AuditService],
    })
    class AuditModule {}

    const app = await Test.createTestingModule({
      imports: [DatabaseModule.forRoot({ connection: database.current.url }), AuditModule],
    }).compile();
    try {
      const audit = app.get(AuditService).db;
      expect(audit.schema).toBe('audit');
      await audit.fetchValue('SELECT 1');
      const pool = app.get<pg.Pool>(getPoolToken());
      expect(pool.totalCount).toBe(1);
    } finally {
      await app.close();
    }
  });

  it('rejects an invalid schema name while the module is defined', () => {
    expect(() => DatabaseModule.forRoot({ schemas: { 'bad-name': {} } })).toThrow(
      InvalidIdentifierError,
    );
    expect(() => DatabaseModule.forFeature({ name: 'x'.repeat(64) })).toThrow(
      InvalidIdentifierError,
    );
  });

  describe('options refused or read at start-up', () => {
    /** Stands in for @nestjs/config: every value is a string, as environment variables are. */
    const env = () => ({ DATABASE_URL: database.current.url, DB_POOL_MAX: '7', MIGRATE: 'false' });
    const boot = async (
      root: DynamicModule,
      providers: Array<new (...a: never[]) => unknown> = [],
    ) => {
      const app = await Test.createTestingModule({ imports: [root], providers }).compile();
      try {
        await app.init();
        return app;
      } catch (err) {
        await app.close().catch(() => undefined);
        throw err;
      }
    };

    it('reads numeric and boolean strings from a config service as numbers and booleans', async () => {
      const app = await boot(
        DatabaseModule.forRootAsync({
          useFactory: () => {
            const config = env();
            return {
              connection: config.DATABASE_URL,
              pool: { max: config.DB_POOL_MAX as unknown as number },
              migrateOnStartup: config.MIGRATE as unknown as boolean,
            };
          },
          schemas: { env_schema: { migrations: '/nonexistent/never/read' } },
        }),
      );
      try {
        const pool = app.get<pg.Pool>(getPoolToken());
        expect(pool.options.max).toBe(7);
        await app.get<SchemaDb>(getSchemaDbToken('env_schema')).fetchValue('SELECT 1');
      } finally {
        await app.close();
      }
    });

    it('says that schemas and tenancy returned by the factory belong beside it', async () => {
      const error = await boot(
        DatabaseModule.forRootAsync({
          imports: [AppConfigModule],
          inject: [AppConfig],
          useFactory: (config: AppConfig) =>
            ({ connection: config.databaseUrl, schemas, tenancy: {} }) as never,
        }),
      ).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect((error as Error).message).toMatch(
        /"schemas" and "tenancy" came from the forRootAsync factory.*forRootAsync\(\{ imports, inject, useFactory, schemas: …, tenancy: … \}\)/,
      );
    });

    it('says so before Nest reports the missing manager, when the factory needs no other module', async () => {
      // OrdersService injects the schemas the factory tried to declare: without the check, Nest's
      // "can't resolve dependencies" would be all the user sees.
      const error = await boot(
        DatabaseModule.forRootAsync({
          useFactory: () => ({ connection: database.current.url, schemas }) as never,
        }),
        [OrdersService],
      ).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect((error as Error).message).toMatch(/"schemas" came from the forRootAsync factory/);
    });

    it('refuses a malformed connection URL with a typed error that hides the password', async () => {
      const error = await boot(
        DatabaseModule.forRoot({ connection: 'postgres://app:hunter2-secret@db:port/app' }),
      ).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect(String((error as Error).stack)).not.toContain('hunter2');
    });
  });
});
