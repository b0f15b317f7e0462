// Metrics and the pool's fair share with both tiers: tenants are counted per tier (no label per
// tenant), and a pooled tenant's burst holds no more of the pool than a schema tenant's.
import { randomUUID } from 'node:crypto';
import { Test, type TestingModule } from '@nestjs/testing';
import pg from 'pg';
import { Registry } from 'prom-client';
import { DatabaseModule, TenantService } from '../../../../lib/index.js';
import { DatabaseMonitor } from '../../../../lib/observability/index.js';
import { useTestDatabase } from '../../../support/database.js';
import { useMigrationFolders } from '../../../support/migrations.js';

const ROLE = `pooled_${randomUUID().slice(0, 8)}`;
const POOL_MAX = 4;
const SHARE = 2;

describe('metrics and fair share with the pooled tier', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let app: TestingModule;
  let tenants: TenantService;
  const registry = new Registry();

  beforeAll(async () => {
    const migrations = await folder({
      '001_items.sql': 'CREATE TABLE {{tables.items}} (id int);',
    });
    app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          pool: { max: POOL_MAX },
          metrics: { prometheus: { registry } },
          tenancy: {
            interceptor: false,
            registrySchema: 'tier_metrics',
            migrations,
            pooled: { role: ROLE },
            maxConnectionsPerTenant: SHARE,
          },
        }),
      ],
    }).compile();
    await app.init();
    tenants = app.get(TenantService);
  });
  afterAll(async () => {
    await app?.close();
    const admin = new pg.Client(process.env.DATABASE_URL);
    await admin.connect();
    await admin.query('DROP SCHEMA IF EXISTS tenancy_pooled CASCADE');
    await admin.query(`DROP ROLE IF EXISTS ${ROLE}`);
    await admin.end();
  });

  it('counts tenants by tier and status, with no label per tenant', async () => {
    for (const id of ['p1', 'p2', 'p3']) await tenants.create(id, { tier: 'pooled' });
    await tenants.create('s1');
    await tenants.suspend('p3');
    const counts = app.get(DatabaseMonitor).getTenantCounts();
    expect(counts?.map((c) => `${c.tier}/${c.status}=${c.count}`).sort()).toEqual([
      'pooled/active=2',
      'pooled/suspended=1',
      'schema/active=1',
    ]);
    const lines = (await registry.metrics())
      .split('\n')
      .filter((line) => line.startsWith('pg_tenancy_tenants{'));
    expect(lines.sort()).toEqual([
      'pg_tenancy_tenants{tier="pooled",status="active"} 2',
      'pg_tenancy_tenants{tier="pooled",status="suspended"} 1',
      'pg_tenancy_tenants{tier="schema",status="active"} 1',
    ]);
    await tenants.resume('p3');
    // Query metrics: every pooled tenant's queries share one schema label, the pooled schema.
    for (const id of ['p1', 'p2', 's1']) {
      await tenants.run(id, async () =>
        (await tenants.db(id)).fetchAll('SELECT * FROM {{tables.items}}'),
      );
    }
    const queries = (await registry.metrics())
      .split('\n')
      .filter((line) => line.startsWith('pg_tenancy_queries_total{') && line.includes('SELECT'));
    expect(queries.sort()).toEqual([
      'pg_tenancy_queries_total{schema="tenancy_pooled",operation="SELECT",outcome="ok"} 2',
      'pg_tenancy_queries_total{schema="tenant_*",operation="SELECT",outcome="ok"} 1',
    ]);
  });

  it("caps a pooled tenant's burst at its share like a schema tenant's", async () => {
    for (const [noisy, quiet] of [
      ['p1', 's1'],
      ['s1', 'p2'],
    ]) {
      let inside = 0;
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let entered!: () => void;
      const share = new Promise<void>((resolve) => (entered = resolve));
      const db = await tenants.db(noisy);
      // A burst of the pool's size: each transaction holds its connection until released.
      const burst = Array.from({ length: POOL_MAX }, () =>
        tenants.run(noisy, () =>
          db.transaction(async (tx) => {
            await tx.fetchAll('SELECT * FROM {{tables.items}}');
            if (++inside === SHARE) entered();
            await gate;
          }),
        ),
      );
      await share;
      // The other tenant is served while the burst holds its share; the burst got no more.
      const other = await tenants.db(quiet);
      await tenants.run(quiet, () => other.fetchAll('SELECT * FROM {{tables.items}}'));
      expect(inside).toBe(SHARE);
      release();
      await Promise.all(burst);
      expect(inside).toBe(POOL_MAX);
    }
  });
});
