// @Transactional() with a pooled tenant's @InjectTenantDb() manager and a shared schema's
// @InjectSchemaDb() manager: one transaction, the tenant's statements held to its rows under the
// pooled role, the shared schema's run as the login role, and both rolled back together.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Injectable } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import pg from 'pg';
import {
  DatabaseModule,
  InjectSchemaDb,
  InjectTenantDb,
  SchemaDb,
  TenantService,
  Transactional,
} from '../../../../lib/index.js';
import { adminPool, useTestDatabase } from '../../../support/database.js';
import { useMigrationFolders } from '../../../support/migrations.js';

const ROLE = `pooled_${randomUUID().slice(0, 8)}`;
const MIGRATIONS = join(process.cwd(), 'sample-app/migrations/tenant');

@Injectable()
class ProjectLedger {
  constructor(
    @InjectTenantDb() private readonly db: SchemaDb,
    @InjectSchemaDb('ledger') private readonly ledger: SchemaDb,
  ) {}

  @Transactional()
  async add(name: string, fail = false) {
    await this.db.execute('INSERT INTO {{tables.projects}} (name) VALUES ($1)', [name]);
    await this.ledger.execute(
      'INSERT INTO {{tables.entries}} (note, login) VALUES ($1, current_user = session_user)',
      [name],
    );
    // No tenant filter: the policy holds it.
    const seen = await this.db.fetchAll<{ name: string }>(
      'SELECT name FROM {{tables.projects}} ORDER BY name',
    );
    const [tenantTx, ledgerTx] = [
      await this.db.fetchValue<string>('SELECT txid_current()::text'),
      await this.ledger.fetchValue<string>('SELECT txid_current()::text'),
    ];
    if (fail) throw new Error('undo');
    return { seen: seen.map((r) => r.name), oneTransaction: tenantTx === ledgerTx };
  }
}

describe('@Transactional() across a pooled tenant and a shared schema', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let app: TestingModule;
  let admin: pg.Pool;

  beforeAll(async () => {
    admin = adminPool(database.current.url, 2);
    const ledger = await folder({
      '001_entries.sql': 'CREATE TABLE {{tables.entries}} (note text, login boolean);',
    });
    app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          pool: { max: 4 },
          schemas: { ledger: { migrations: ledger } },
          tenancy: {
            migrations: MIGRATIONS,
            interceptor: false,
            registrySchema: 'reg_pooled_tx',
            pooled: { role: ROLE },
          },
        }),
      ],
      providers: [ProjectLedger],
    }).compile();
    await app.init();
  });
  afterAll(async () => {
    await app?.close();
    await admin?.end();
    const client = new pg.Client(process.env.DATABASE_URL);
    await client.connect();
    await client.query(`DROP ROLE IF EXISTS ${ROLE}`);
    await client.end();
  });

  it('commits and rolls back both together, each statement under its own role', async () => {
    const tenants = app.get(TenantService);
    const service = app.get(ProjectLedger);
    await tenants.create('one', { tier: 'pooled' });
    await tenants.create('two', { tier: 'pooled' });
    expect(await tenants.run('one', () => service.add('one-a'))).toEqual({
      seen: ['one-a'],
      oneTransaction: true,
    });
    expect(await tenants.run('two', () => service.add('two-a'))).toEqual({
      seen: ['two-a'],
      oneTransaction: true,
    });
    await expect(tenants.run('one', () => service.add('one-b', true))).rejects.toThrow('undo');

    const projects = await admin.query(
      'SELECT tenant_id, name FROM tenancy_pooled.projects ORDER BY name',
    );
    expect(projects.rows).toEqual([
      { tenant_id: 'one', name: 'one-a' },
      { tenant_id: 'two', name: 'two-a' },
    ]);
    const entries = await admin.query('SELECT note, login FROM ledger.entries ORDER BY note');
    expect(entries.rows).toEqual([
      { note: 'one-a', login: true },
      { note: 'two-a', login: true },
    ]);
  });
});
