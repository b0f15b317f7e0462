import { Injectable } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import { sql, type Generated, type Kysely } from 'kysely';
import pg from 'pg';
import {
  DatabaseModule,
  DatabaseShuttingDownError,
  InjectSchemaDb,
  InjectTenantDb,
  InvalidOptionsError,
  SchemaDb,
  TenantContextMissingError,
  TenantService,
  Transactional,
  TransactionAbortedError,
} from '../../../lib/index.js';
import { DatabaseMonitor, type QueryEvent } from '../../../lib/observability/index.js';
import { DrainController } from '../../../lib/advanced.js';
import { KyselyStreamNotSupportedError, kyselyFor } from '../../../lib/kysely/index.js';
import { adminPool, useTestDatabase } from '../../support/database.js';
import { hold } from '../../support/hold.js';
import { useMigrationFolders } from '../../support/migrations.js';

/** One tenant schema's tables, unqualified, as kysely-codegen would write them. */
interface TenantDB {
  projects: { id: Generated<number>; name: string; owner_id: number | null };
  members: { id: Generated<number>; name: string };
}
interface LedgerDB {
  entries: { id: Generated<number>; note: string };
}

@Injectable()
class ProjectsService {
  readonly db: Kysely<TenantDB>;
  constructor(@InjectTenantDb() tenantDb: SchemaDb) {
    // Built outside any request: the instance follows the tenant of each query's caller.
    this.db = kyselyFor<TenantDB>(tenantDb);
  }
  async add(name: string): Promise<number> {
    const row = await this.db
      .insertInto('projects')
      .values({ name })
      .returning('id')
      .executeTakeFirstOrThrow();
    return row.id;
  }
  async names(): Promise<string[]> {
    const rows = await this.db.selectFrom('projects').select('name').orderBy('id').execute();
    return rows.map((r) => r.name);
  }
  async txid(): Promise<string> {
    const { rows } = await sql<{
      txid: string;
    }>`SELECT txid_current_if_assigned()::text AS txid`.execute(this.db);
    return rows[0].txid;
  }
}

@Injectable()
class LedgerService {
  readonly db: Kysely<LedgerDB>;
  constructor(@InjectSchemaDb('ledger') readonly manager: SchemaDb) {
    this.db = kyselyFor<LedgerDB>(manager);
  }
  async record(note: string): Promise<void> {
    await this.db.insertInto('entries').values({ note }).execute();
  }
  /** The same through the SQL-template API: joins whatever transaction the caller runs in. */
  async recordWithTemplate(note: string): Promise<void> {
    await this.manager.execute('INSERT INTO {{tables.entries}} (note) VALUES ($1)', [note]);
  }
  txid(): Promise<string | null> {
    return this.manager.fetchValue<string>('SELECT txid_current_if_assigned()::text');
  }
}

@Injectable()
class BillingService {
  constructor(
    readonly projects: ProjectsService,
    readonly ledger: LedgerService,
  ) {}
  @Transactional()
  async run<T>(body: () => Promise<T>): Promise<T> {
    return body();
  }
}

describe('typed queries with Kysely', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  const events: QueryEvent[] = [];
  let admin: pg.Pool;
  let app: TestingModule;
  let tenants: TenantService;
  let projects: ProjectsService;
  let ledger: LedgerService;
  let billing: BillingService;

  const rows = async (table: string) =>
    (await admin.query(`SELECT * FROM ${table} ORDER BY id`)).rows.map((r) => r.name ?? r.note);

  async function boot(): Promise<TestingModule> {
    const tenantMigrations = await folder({
      '001_tables.sql': `
        CREATE TABLE {{tables.members}} (id serial PRIMARY KEY, name text NOT NULL);
        CREATE TABLE {{tables.projects}} (
          id serial PRIMARY KEY, name text NOT NULL, owner_id int REFERENCES {{tables.members}});`,
    });
    const ledgerMigrations = await folder({
      '001_entries.sql':
        'CREATE TABLE {{tables.entries}} (id serial PRIMARY KEY, note text NOT NULL);',
    });
    const module = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          pool: { max: 6 },
          schemas: { ledger: { migrations: ledgerMigrations } },
          tenancy: { migrations: tenantMigrations, interceptor: false, registrySchema: 'reg_ky' },
          onQuery: (e) => events.push(e),
          slowQueryMs: 40,
        }),
      ],
      providers: [ProjectsService, LedgerService, BillingService],
    }).compile();
    await module.init();
    return module;
  }

  beforeAll(async () => {
    admin = adminPool(database.current.url);
    app = await boot();
    tenants = app.get(TenantService);
    await tenants.create('acme');
    await tenants.create('globex');
    projects = app.get(ProjectsService);
    ledger = app.get(LedgerService);
    billing = app.get(BillingService);
  });
  beforeEach(async () => {
    await admin.query(
      'TRUNCATE tenant_acme.projects, tenant_acme.members, tenant_globex.projects, tenant_globex.members, ledger.entries',
    );
    events.length = 0;
  });
  afterAll(async () => {
    await app?.close();
    await admin.end();
  });

  it('qualifies tables with the tenant of each query: two tenants see only their own rows', async () => {
    await tenants.run('acme', () => projects.add('rocket'));
    await tenants.run('globex', () => projects.add('lamp'));
    await tenants.run('acme', () => projects.add('anvil'));
    // Interleaved: one instance, built once, serves both tenants at the same time.
    const [acme, globex] = await Promise.all([
      tenants.run('acme', () => projects.names()),
      tenants.run('globex', () => projects.names()),
    ]);
    expect(acme).toEqual(['rocket', 'anvil']);
    expect(globex).toEqual(['lamp']);
    expect(await rows('tenant_acme.projects')).toEqual(['rocket', 'anvil']);
    expect(await rows('tenant_globex.projects')).toEqual(['lamp']);
    // The module's query path ran them: hooks saw the expanded SQL, schema and tenant.
    const select = events.find((e) => e.operation === 'SELECT' && e.tenantId === 'globex');
    expect(select).toMatchObject({ schema: 'tenant_globex' });
    expect(select!.sql).toContain('from "tenant_globex"."projects"');
  });

  it('compiles to one SQL template for every tenant, never to a search_path', () => {
    const compiled = projects.db
      .selectFrom('projects')
      .select('name')
      .where('id', '=', 1)
      .compile();
    expect(compiled.sql).toBe('select "name" from {{tables.projects}} where "id" = $1');
    expect(compiled.parameters).toEqual([1]);
  });

  it('qualifies joined tables and table-qualified columns, but not aliases or CTE names', async () => {
    await tenants.run('acme', async () => {
      const [owner] = await projects.db
        .insertInto('members')
        .values({ name: 'ada' })
        .returning('id')
        .execute();
      await projects.db
        .insertInto('projects')
        .values({ name: 'engine', owner_id: owner.id })
        .execute();
    });
    await tenants.run('globex', () => projects.add('decoy'));
    const query = (db: Kysely<TenantDB>) =>
      db
        .with('named', (w) => w.selectFrom('projects').select(['projects.name', 'owner_id']))
        .selectFrom('named as n')
        .innerJoin('members as m', 'm.id', 'n.owner_id')
        .select(['n.name as project', 'm.name as owner'])
        .execute();
    expect(await tenants.run('acme', () => query(projects.db))).toEqual([
      { project: 'engine', owner: 'ada' },
    ]);
    expect(await tenants.run('globex', () => query(projects.db))).toEqual([]);
    const compiled = projects.db
      .selectFrom('projects as p')
      .innerJoin('members', 'members.id', 'p.owner_id')
      .select(['p.name', 'members.name as owner'])
      .compile();
    expect(compiled.sql).toBe(
      'select "p"."name", {{tables.members}}."name" as "owner" from {{tables.projects}} as "p" inner join {{tables.members}} on {{tables.members}}."id" = "p"."owner_id"',
    );
  });

  it('leaves names with an explicit schema alone (withSchema, "schema.table")', async () => {
    await tenants.run('acme', async () => {
      const cross = projects.db.withSchema('ledger') as unknown as Kysely<LedgerDB>;
      await cross.insertInto('entries').values({ note: 'from a tenant' }).execute();
    });
    expect(await rows('ledger.entries')).toEqual(['from a tenant']);
    expect(projects.db.withoutPlugins().selectFrom('projects').selectAll().compile().sql).toBe(
      'select * from {{tables.projects}}',
    );
  });

  it('refuses to run outside a tenant context, like the tenant manager itself', async () => {
    await expect(projects.names()).rejects.toBeInstanceOf(TenantContextMissingError);
  });

  describe('transactions', () => {
    it('commits a Kysely transaction, and rolls it back when its callback throws', async () => {
      await tenants.run('acme', () =>
        projects.db.transaction().execute(async (trx) => {
          await trx.insertInto('projects').values({ name: 'kept' }).execute();
        }),
      );
      await expect(
        tenants.run('acme', () =>
          projects.db.transaction().execute(async (trx) => {
            await trx.insertInto('projects').values({ name: 'undone' }).execute();
            expect(await trx.selectFrom('projects').select('name').execute()).toHaveLength(2);
            throw new Error('boom');
          }),
        ),
      ).rejects.toThrow('boom');
      expect(await rows('tenant_acme.projects')).toEqual(['kept']);
      const inTx = events.filter((e) => e.inTransaction).map((e) => e.operation);
      expect(inTx).toEqual(['INSERT', 'INSERT', 'SELECT']);
    });

    it('lets other services, through any manager, join a Kysely transaction and roll back with it', async () => {
      const seen = await tenants
        .run('acme', () =>
          projects.db.transaction().execute(async (trx) => {
            await trx.insertInto('projects').values({ name: 'p1' }).execute();
            await ledger.record('kysely, named schema');
            await ledger.recordWithTemplate('template, named schema');
            const ids = [await projects.txid(), await ledger.txid()];
            throw Object.assign(new Error('undo'), { ids });
          }),
        )
        .catch((err: { ids: string[] }) => err.ids);
      expect(seen[0]).toMatch(/^\d+$/);
      expect(seen[1]).toBe(seen[0]);
      expect(await rows('tenant_acme.projects')).toEqual([]);
      expect(await rows('ledger.entries')).toEqual([]);
    });

    it('joins the ambient transaction of a @Transactional() method: one connection, one outcome', async () => {
      const ids = await tenants.run('acme', () =>
        billing.run(async () => {
          await ledger.recordWithTemplate('before');
          const inner = await projects.db.transaction().execute(async (trx) => {
            await trx.insertInto('projects').values({ name: 'joined' }).execute();
            return projects.txid();
          });
          return [await ledger.txid(), inner];
        }),
      );
      expect(ids[1]).toBe(ids[0]);
      expect(await rows('tenant_acme.projects')).toEqual(['joined']);

      await expect(
        tenants.run('acme', () =>
          billing.run(async () => {
            await projects.db.transaction().execute(async (trx) => {
              await trx.insertInto('projects').values({ name: 'rolled back' }).execute();
            });
            await ledger.record('also rolled back');
            throw new Error('outer fails');
          }),
        ),
      ).rejects.toThrow('outer fails');
      expect(await rows('tenant_acme.projects')).toEqual(['joined']);
      expect(await rows('ledger.entries')).toEqual(['before']);
    });

    it('applies isolation level and access mode, and refuses levels PostgreSQL lacks', async () => {
      const level = await tenants.run('acme', () =>
        projects.db
          .transaction()
          .setIsolationLevel('serializable')
          .setAccessMode('read only')
          .execute(async (trx) => {
            const { rows: r } = await sql<{
              level: string;
              ro: string;
            }>`SELECT current_setting('transaction_isolation') AS level, current_setting('transaction_read_only') AS ro`.execute(
              trx,
            );
            return r[0];
          }),
      );
      expect(level).toEqual({ level: 'serializable', ro: 'on' });
      await expect(
        tenants.run('acme', () =>
          projects.db
            .transaction()
            .setIsolationLevel('snapshot')
            .execute(async () => 1),
        ),
      ).rejects.toBeInstanceOf(InvalidOptionsError);
    });

    it('reports a transaction that an error inside the callback aborted, instead of committing', async () => {
      await expect(
        tenants.run('acme', () =>
          projects.db.transaction().execute(async (trx) => {
            await trx.insertInto('projects').values({ name: 'lost' }).execute();
            await sql`SELECT 1/0`.execute(trx).catch(() => undefined);
          }),
        ),
      ).rejects.toBeInstanceOf(TransactionAbortedError);
      expect(await rows('tenant_acme.projects')).toEqual([]);
    });

    it('runs controlled transactions with savepoints', async () => {
      await tenants.run('acme', async () => {
        const trx = await projects.db.startTransaction().execute();
        await trx.insertInto('projects').values({ name: 'kept' }).execute();
        const sp = await trx.savepoint('before_second').execute();
        await sp.insertInto('projects').values({ name: 'undone' }).execute();
        await sp.rollbackToSavepoint('before_second').execute();
        await trx.commit().execute();
      });
      expect(await rows('tenant_acme.projects')).toEqual(['kept']);
      await tenants.run('acme', async () => {
        const trx = await projects.db.startTransaction().execute();
        await trx.insertInto('projects').values({ name: 'dropped' }).execute();
        await trx.rollback().execute();
      });
      expect(await rows('tenant_acme.projects')).toEqual(['kept']);
    });
  });

  it('refuses stream() with a typed error', async () => {
    const stream = tenants.run('acme', () =>
      projects.db.selectFrom('projects').selectAll().stream().next(),
    );
    await expect(stream).rejects.toBeInstanceOf(KyselyStreamNotSupportedError);
  });

  it('keeps per-manager instances: the same manager gives the same instance', () => {
    const manager = ledger.manager;
    expect(kyselyFor(manager)).toBe(ledger.db);
    expect(kyselyFor(manager.withSchema('tenant_acme'))).not.toBe(ledger.db);
  });

  it('logs slow Kysely queries; raw sql fragments can use the templates', async () => {
    await tenants.run('acme', () =>
      sql`SELECT pg_sleep(0.05), count(*) FROM {{tables.projects}}`.execute(projects.db),
    );
    const slow = app.get(DatabaseMonitor).getSlowQueries();
    expect(slow.at(-1)).toMatchObject({
      sql: 'SELECT pg_sleep(0.05), count(*) FROM "tenant_acme"."projects"',
      tenantId: 'acme',
    });
  });

  it('is refused during shutdown like every other query, after in-flight work finished', async () => {
    const own = await boot();
    try {
      const drain = own.get(DrainController);
      const ownLedger = own.get(LedgerService);
      const work = await hold((wait) =>
        ownLedger.db.transaction().execute(async (trx) => {
          await trx.insertInto('entries').values({ note: 'in flight' }).execute();
          await wait();
        }),
      );
      const report = drain.drain(30_000);
      await expect(ownLedger.record('late')).rejects.toBeInstanceOf(DatabaseShuttingDownError);
      await work.release();
      expect(await report).toMatchObject({ drained: 1, cancelled: 0 });
      expect(await rows('ledger.entries')).toEqual(['in flight']);
    } finally {
      await own.close();
    }
  });
});
