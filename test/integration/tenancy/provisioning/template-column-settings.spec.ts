// Column settings CREATE TABLE does not carry (storage, compression, statistics target, options)
// and CLUSTER ON: a tenant copied from the template has them as a replayed one does, and the
// exact fingerprint sees a statistics target, so a copy without it would never pass as exact.
import { Test, type TestingModule } from '@nestjs/testing';
import type pg from 'pg';
import { DatabaseModule, TenantService } from '../../../../lib/index.js';
import { exactFingerprint } from '../../../../lib/catalog/fingerprints.js';
import { adminPool, useTestDatabase } from '../../../support/database.js';
import { useMigrationFolders } from '../../../support/migrations.js';

const FILES = {
  '001_labels.sql': `
CREATE TABLE {{tables.labels}} (id int PRIMARY KEY, name text NOT NULL, code text, body text);
ALTER TABLE {{tables.labels}} ALTER COLUMN name SET STATISTICS 500;
ALTER TABLE {{tables.labels}} ALTER COLUMN name SET (n_distinct = -0.5);
ALTER TABLE {{tables.labels}} ALTER COLUMN code SET STORAGE MAIN;
ALTER TABLE {{tables.labels}} ALTER COLUMN body SET COMPRESSION pglz;
CREATE INDEX labels_name ON {{tables.labels}} (name);
ALTER TABLE {{tables.labels}} CLUSTER ON labels_name;`,
};

describe('template copy of column settings', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  const apps: TestingModule[] = [];
  const warnings: string[] = [];
  let admin: pg.Pool;

  async function boot(migrations: string, template: boolean): Promise<TenantService> {
    const app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          tenancy: { interceptor: false, migrations, template, templateSpares: 0 },
        }),
      ],
    })
      .setLogger({
        log: () => undefined,
        error: () => undefined,
        warn: (message: unknown) => void warnings.push(String(message)),
      })
      .compile();
    apps.push(app);
    await app.init();
    return app.get(TenantService);
  }

  const settings = async (schema: string) =>
    (
      await admin.query<{ line: string }>(
        `SELECT a.attname || ' storage=' || a.attstorage::text || ' compression=' || a.attcompression::text
                || ' statistics=' || coalesce(CASE WHEN a.attstattarget >= 0 THEN a.attstattarget::text END, '-')
                || ' options=' || coalesce(a.attoptions::text, '-') AS line
           FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 ORDER BY a.attnum`,
        [`"${schema}".labels`],
      )
    ).rows.map((r) => r.line);
  const clustered = async (schema: string) =>
    (
      await admin.query<{ name: string }>(
        `SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
          WHERE i.indrelid = $1::regclass AND i.indisclustered`,
        [`"${schema}".labels`],
      )
    ).rows.map((r) => r.name);

  beforeAll(() => {
    admin = adminPool(database.current.url);
  });
  afterAll(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
    await admin.end();
  });

  it('copies storage, compression, statistics, options and CLUSTER ON from the template', async () => {
    const migrations = await folder(FILES);
    await (await boot(migrations, false)).create('replayed');
    await (await boot(migrations, true)).create('copied');
    expect(warnings).toEqual([]); // the copy passed the exact check: no fallback to replay
    expect(await settings('tenant_copied')).toEqual(await settings('tenant_replayed'));
    expect(await settings('tenant_copied')).toContain(
      'name storage=x compression= statistics=500 options={n_distinct=-0.5}',
    );
    expect(await clustered('tenant_copied')).toEqual(['labels_name']);
  });

  it('tells two schemas apart by a column statistics target alone', async () => {
    await admin.query(`CREATE SCHEMA stats_a; CREATE TABLE stats_a.t (x int);
                       CREATE SCHEMA stats_b; CREATE TABLE stats_b.t (x int);
                       ALTER TABLE stats_b.t ALTER COLUMN x SET STATISTICS 50`);
    const client = await admin.connect();
    try {
      const [a, b] = [
        await exactFingerprint(client, 'stats_a'),
        await exactFingerprint(client, 'stats_b'),
      ];
      expect(b).not.toEqual(a);
    } finally {
      client.release();
      await admin.query('DROP SCHEMA stats_a, stats_b CASCADE');
    }
  });
});
