import { Test, type TestingModule } from '@nestjs/testing';
import pg from 'pg';
import { DatabaseModule, TenantService } from '../../../lib/index.js';
import { adminPool, useTestDatabase } from '../../support/database.js';
import { useMigrationFolders } from '../../support/migrations.js';

const FILES = {
  '001_items.sql': 'CREATE TABLE {{tables.items}} (id serial PRIMARY KEY, name text NOT NULL);',
  '002_seed.sql': "INSERT INTO {{tables.items}} (name) VALUES ('a'), ('b');",
};

describe('tenant drop', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;
  let app: TestingModule;
  let tenants: TenantService;

  beforeAll(async () => {
    admin = adminPool(database.current.url, 4);
    app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          pool: { max: 4 },
          tenancy: {
            interceptor: false,
            registrySchema: 'reg_drop',
            migrations: await folder(FILES),
          },
        }),
      ],
    })
      .setLogger({ log: () => undefined, warn: () => undefined, error: () => undefined })
      .compile();
    await app.init();
    tenants = app.get(TenantService);
  });
  afterAll(async () => {
    await app?.close();
    await admin.end();
  });

  it('drops a large tenant blocked by a long transaction without queueing anyone behind it', async () => {
    await tenants.create('big');
    await tenants.create('other');
    // More tables than one drop transaction takes at once.
    await admin.query(
      `DO $$ BEGIN FOR i IN 1..260 LOOP
         EXECUTE format('CREATE TABLE tenant_big.t%s (id int PRIMARY KEY REFERENCES tenant_big.items (id))', i);
       END LOOP; END $$`,
    );
    // A long transaction holds the tenant's table.
    const holder = await admin.connect();
    await holder.query('BEGIN');
    await holder.query('SELECT count(*) FROM tenant_big.items');

    const dropped = tenants.drop('big');
    let dropSettled = false;
    void dropped.then(
      () => (dropSettled = true),
      () => (dropSettled = true),
    );
    // Wait until the drop is seen waiting for a lock at least once.
    const seen = async () =>
      (
        await admin.query(
          `SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE NOT l.granted AND a.application_name = 'nestjs-pg-tenancy:drop'
              AND a.datname = current_database()`,
        )
      ).rowCount! > 0;
    while (!(await seen())) {
      if (dropSettled) throw new Error('the drop finished without waiting for the holder');
    }

    // Meanwhile another session takes the same table's lock, and another tenant works: neither
    // waits more than a second for a lock (a drop queued for its lock would hold them up).
    const other = await tenants.db('other');
    const locker = await admin.connect();
    try {
      await locker.query("SET lock_timeout = '1s'");
      for (let i = 0; i < 10; i++) {
        const big = await locker.query('SELECT count(*)::int AS n FROM tenant_big.items');
        expect(big.rows[0].n).toBe(2);
        const count = await other.transaction(async (tx) => {
          await tx.execute("SET LOCAL lock_timeout = '1s'");
          return tx.fetchValue<number>('SELECT count(*)::int FROM {{tables.items}}');
        });
        expect(count).toBe(2);
      }
    } finally {
      locker.release();
    }
    expect(dropSettled).toBe(false);

    // The long transaction ends normally (it was not cancelled); then the drop finishes.
    await holder.query('COMMIT');
    holder.release();
    await dropped;
    const left = await admin.query(
      "SELECT 1 FROM pg_namespace WHERE nspname = 'tenant_big' UNION ALL SELECT 1 FROM reg_drop.tenants WHERE id = 'big'",
    );
    expect(left.rowCount).toBe(0);
    expect(await tenants.get('other')).toMatchObject({ status: 'active' });
  });
});
