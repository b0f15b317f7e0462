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
  SchemaDb,
  type DatabaseModuleOptions,
  type DatabaseOptionsFactory,
} from '../../lib/index.js';
import { useTestDatabase } from '../support/database.js';

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

    it('closes the pool when the application closes', async () => {
      const other = await Test.createTestingModule({ imports: [root()] }).compile();
      await other.init();
      const pool = other.get<pg.Pool>(getPoolToken());
      await other.get<SchemaDb>(getSchemaDbToken('users')).fetchValue('SELECT 1');
      await other.close();
      expect(pool.ended).toBe(true);
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
});
