import { Injectable, SetMetadata } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import pg from 'pg';
import {
  DatabaseModule,
  DatabaseShuttingDownError,
  getSchemaDbToken,
  InjectSchemaDb,
  InjectTenantDb,
  InvalidOptionsError,
  SavepointActiveError,
  SchemaDb,
  TenantService,
  Transactional,
  TransactionalHostMissingError,
  TransactionNotAllowedError,
  TransactionRequiredError,
  type TransactionalOptions,
} from '../../../../lib/index.js';
import { DrainController } from '../../../../lib/advanced.js';
import { adminPool, useTestDatabase } from '../../../support/database.js';
import { useMigrationFolders } from '../../../support/migrations.js';

const TENANT = 'acme';
const TENANT_SCHEMA = 'tenant_acme';

/** Reads and writes the current tenant's projects through the tenant proxy. */
@Injectable()
class ProjectsService {
  constructor(@InjectTenantDb() readonly db: SchemaDb) {}
  async add(name: string): Promise<number> {
    return (await this.db.fetchValue<number>(
      'INSERT INTO {{tables.projects}} (name) VALUES ($1) RETURNING id',
      [name],
    ))!;
  }
  count(): Promise<number | null> {
    return this.db.fetchValue<number>('SELECT count(*)::int FROM {{tables.projects}}');
  }
  /** The ledger, read through withSchema() of the tenant proxy. */
  ledgerCount(): Promise<number | null> {
    return this.db
      .withSchema('ledger')
      .fetchValue<number>('SELECT count(*)::int FROM {{tables.entries}}');
  }
  async names(): Promise<string[]> {
    const rows = await this.db.fetchAll<{ name: string }>('SELECT name FROM {{tables.projects}}');
    return rows.map((r) => r.name);
  }
  txid(): Promise<string | null> {
    return this.db.fetchValue<string>('SELECT txid_current_if_assigned()::text');
  }
  rename(id: number, name: string): Promise<number> {
    return this.db.execute('UPDATE {{tables.projects}} SET name = $2 WHERE id = $1', [id, name]);
  }
  append(id: number, suffix: string): Promise<number> {
    return this.db.execute('UPDATE {{tables.projects}} SET name = name || $2 WHERE id = $1', [
      id,
      suffix,
    ]);
  }
  name(id: number): Promise<string | null> {
    return this.db.fetchValue<string>('SELECT name FROM {{tables.projects}} WHERE id = $1', [id]);
  }
}

/** Writes a named schema through @InjectSchemaDb(). */
@Injectable()
class LedgerService {
  constructor(@InjectSchemaDb('ledger') readonly db: SchemaDb) {}
  record(note: string): Promise<number> {
    return this.db.execute('INSERT INTO {{tables.entries}} (note) VALUES ($1)', [note]);
  }
  count(): Promise<number | null> {
    return this.db.fetchValue<number>('SELECT count(*)::int FROM {{tables.entries}}');
  }
  /** The tenant's projects, read through withSchema() of a named manager. */
  projectCount(): Promise<number | null> {
    return this.db
      .withSchema(TENANT_SCHEMA)
      .fetchValue<number>('SELECT count(*)::int FROM {{tables.projects}}');
  }
  txid(): Promise<string | null> {
    return this.db.fetchValue<string>('SELECT txid_current_if_assigned()::text');
  }
  @Transactional({ propagation: 'requires-new' })
  async recordIndependently(note: string): Promise<void> {
    await this.record(note);
  }
  @Transactional({ propagation: 'mandatory' })
  async recordInCallersTransaction(note: string): Promise<void> {
    await this.record(note);
  }
  @Transactional({ propagation: 'never' })
  async report(): Promise<number | null> {
    return this.count();
  }
  @Transactional({ propagation: 'not-supported' })
  async audit(note: string): Promise<void> {
    await this.record(note);
  }
  @Transactional({ propagation: 'nested' })
  async tryRecord(note: string, fail: boolean): Promise<void> {
    await this.record(note);
    if (fail) throw new Error('nested failure');
  }
}

@Injectable()
class CheckoutService {
  calls = 0;
  constructor(
    readonly projects: ProjectsService,
    readonly ledger: LedgerService,
  ) {}

  /** Runs `body` in a transaction with `options`: the decorator under test, parameterised. */
  @Transactional()
  async inTransaction<T>(body: () => Promise<T>): Promise<T> {
    this.calls++;
    return body();
  }

  @Transactional({ isolationLevel: 'repeatable read', retries: 2 })
  async renameAfterRead(id: number, interfere: (attempt: number) => Promise<void>) {
    this.calls++;
    const before = await this.projects.name(id);
    await interfere(this.calls);
    await this.projects.rename(id, `${before}!`);
    await this.ledger.record(`renamed ${id}`);
    return this.projects.name(id);
  }

  /** Updates `first`, then `second`: two calls in opposite orders can deadlock. */
  @Transactional({ retries: 2 })
  async appendToBoth(first: number, second: number, between: () => Promise<void>) {
    this.calls++;
    await this.projects.append(first, '!');
    await between();
    await this.projects.append(second, '!');
  }

  @Transactional()
  @SetMetadata('marker', 'kept')
  async marked(): Promise<string> {
    return 'ok';
  }
}

describe('ambient transactions', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;
  let app: TestingModule;
  let tenants: TenantService;
  let checkout: CheckoutService;
  let projects: ProjectsService;
  let ledger: LedgerService;

  const committed = async () => {
    const projectsRows = await admin.query(
      `SELECT count(*)::int AS n FROM "${TENANT_SCHEMA}".projects`,
    );
    const ledgerRows = await admin.query('SELECT count(*)::int AS n FROM ledger.entries');
    return { projects: projectsRows.rows[0].n as number, ledger: ledgerRows.rows[0].n as number };
  };
  const asTenant = <T>(fn: () => Promise<T>) => tenants.run(TENANT, fn);

  async function boot(poolMax = 8): Promise<TestingModule> {
    const tenantMigrations = await folder({
      '001_projects.sql':
        'CREATE TABLE {{tables.projects}} (id serial PRIMARY KEY, name text NOT NULL);',
    });
    const ledgerMigrations = await folder({
      '001_entries.sql':
        'CREATE TABLE {{tables.entries}} (id serial PRIMARY KEY, note text NOT NULL);',
    });
    const module = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          pool: { max: poolMax },
          schemas: { ledger: { migrations: ledgerMigrations } },
          tenancy: {
            migrations: tenantMigrations,
            interceptor: false,
            registrySchema: 'reg_tx',
            // Some tests hold more than half the pool in one tenant's transactions at a barrier
            // that opens only when all have started: the default fair share would never let
            // them all start.
            maxConnectionsPerTenant: poolMax,
          },
        }),
      ],
      providers: [ProjectsService, LedgerService, CheckoutService],
    }).compile();
    await module.init();
    return module;
  }

  beforeAll(async () => {
    admin = adminPool(database.current.url);
    app = await boot();
    tenants = app.get(TenantService);
    await tenants.create(TENANT);
    checkout = app.get(CheckoutService);
    projects = app.get(ProjectsService);
    ledger = app.get(LedgerService);
  });
  beforeEach(async () => {
    await admin.query(`TRUNCATE "${TENANT_SCHEMA}".projects, ledger.entries`);
    checkout.calls = 0;
  });
  afterAll(async () => {
    await app?.close();
    await admin.end();
  });

  it('lets two services in one @Transactional method see each other’s writes and commit together', async () => {
    const seen = await asTenant(() =>
      checkout.inTransaction(async () => {
        await projects.add('alpha');
        await ledger.record('alpha added');
        return {
          ledgerFromProjects: await projects.ledgerCount(),
          projectsFromLedger: await ledger.projectCount(),
          txids: [await projects.txid(), await ledger.txid()],
          outside: await committed(),
          inTransaction: [projects.db.inTransaction, ledger.db.inTransaction],
        };
      }),
    );
    expect(seen.ledgerFromProjects).toBe(1);
    expect(seen.projectsFromLedger).toBe(1);
    expect(seen.txids[0]).not.toBeNull();
    expect(seen.txids[0]).toBe(seen.txids[1]);
    expect(seen.outside).toEqual({ projects: 0, ledger: 0 });
    expect(seen.inTransaction).toEqual([true, true]);
    expect(await committed()).toEqual({ projects: 1, ledger: 1 });
    expect(ledger.db.inTransaction).toBe(false);
  });

  it('rolls both services back together when the method throws', async () => {
    const failure = new Error('abort checkout');
    await expect(
      asTenant(() =>
        checkout.inTransaction(async () => {
          await projects.add('beta');
          await ledger.record('beta added');
          throw failure;
        }),
      ),
    ).rejects.toBe(failure);
    expect(await committed()).toEqual({ projects: 0, ledger: 0 });
  });

  it('rolls back on a SQL error in a joined service and rethrows it', async () => {
    await expect(
      asTenant(() =>
        checkout.inTransaction(async () => {
          await ledger.record('kept?');
          await projects.db.execute('INSERT INTO {{tables.projects}} (name) VALUES (NULL)');
        }),
      ),
    ).rejects.toMatchObject({ code: '23502' });
    expect(await committed()).toEqual({ projects: 0, ledger: 0 });
  });

  it('makes an explicit db.transaction() follow the call into other services', async () => {
    const counts = await asTenant(() =>
      projects.db.transaction(async (tx) => {
        await tx.execute("INSERT INTO {{tables.projects}} (name) VALUES ('gamma')");
        return [await projects.count(), await ledger.projectCount()];
      }),
    );
    expect(counts).toEqual([1, 1]);
  });

  it('never shares a transaction between interleaved concurrent requests', async () => {
    const n = 6;
    let arrived = 0;
    let openBarrier!: () => void;
    const barrier = new Promise<void>((resolve) => (openBarrier = resolve));
    const results = await Promise.allSettled(
      Array.from({ length: n }, (_, i) =>
        asTenant(() =>
          checkout.inTransaction(async () => {
            await projects.add(`p${i}`);
            const first = await projects.txid();
            // Every request holds its transaction open here until all have started theirs, so
            // their queries interleave on the pool.
            if (++arrived === n) openBarrier();
            await barrier;
            await ledger.record(`l${i}`);
            const second = await ledger.txid();
            const visible = await projects.names();
            if (i % 2 === 1) throw new Error(`request ${i} fails`);
            return { i, first, second, visible };
          }),
        ),
      ),
    );
    const ok = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    expect(ok).toHaveLength(n / 2);
    for (const r of ok) {
      expect(r.first).toBe(r.second);
      // Its own row, uncommitted; other requests' rows only once committed, so never the row of
      // a request that fails (odd i), which is never committed.
      expect(r.visible).toContain(`p${r.i}`);
      expect(r.visible.filter((name) => Number(name.slice(1)) % 2 === 1)).toEqual([]);
    }
    expect(new Set(ok.map((r) => r.first)).size).toBe(n / 2);
    expect(await committed()).toEqual({ projects: n / 2, ledger: n / 2 });
  });

  it('re-runs the whole decorated method on a serialization failure', async () => {
    const id = (
      await admin.query(
        `INSERT INTO "${TENANT_SCHEMA}".projects (name) VALUES ('delta') RETURNING id`,
      )
    ).rows[0].id as number;
    // Another session (its own pool, so never joined) changes the row after the method has
    // read it: the method's update then fails with 40001 and the retry sees the new value.
    const interfere = async (attempt: number) => {
      if (attempt === 1) {
        await admin.query(`UPDATE "${TENANT_SCHEMA}".projects SET name = 'other' WHERE id = $1`, [
          id,
        ]);
      }
    };
    const result = await asTenant(() => checkout.renameAfterRead(id, interfere));
    expect(checkout.calls).toBe(2);
    expect(result).toBe('other!');
    expect(await committed()).toEqual({ projects: 1, ledger: 1 });
  });

  it('re-runs the decorated method that a deadlock (40P01) chose as its victim', async () => {
    const { rows } = await admin.query(
      `INSERT INTO "${TENANT_SCHEMA}".projects (name) VALUES ('a'), ('b') RETURNING id`,
    );
    const [a, b] = rows.map((r) => r.id as number);
    // Each call holds its first row until the other holds its own: their second updates then
    // wait for each other, and PostgreSQL aborts one with 40P01 (after deadlock_timeout, 1 s).
    let aHeld!: () => void;
    let bHeld!: () => void;
    const aReady = new Promise<void>((resolve) => (aHeld = resolve));
    const bReady = new Promise<void>((resolve) => (bHeld = resolve));
    await Promise.all([
      asTenant(() =>
        checkout.appendToBoth(a, b, async () => {
          aHeld();
          await bReady;
        }),
      ),
      asTenant(() =>
        checkout.appendToBoth(b, a, async () => {
          bHeld();
          await aReady;
        }),
      ),
    ]);
    expect(checkout.calls).toBe(3);
    const names = await admin.query(`SELECT name FROM "${TENANT_SCHEMA}".projects ORDER BY id`);
    expect(names.rows).toEqual([{ name: 'a!!' }, { name: 'b!!' }]);
  });

  it('retries at the outermost transaction: a joined method re-runs with it, not alone', async () => {
    const id = (
      await admin.query(
        `INSERT INTO "${TENANT_SCHEMA}".projects (name) VALUES ('eps') RETURNING id`,
      )
    ).rows[0].id as number;
    let outerRuns = 0;
    const interfere = async () => {
      if (outerRuns === 1) {
        await admin.query(`UPDATE "${TENANT_SCHEMA}".projects SET name = 'other' WHERE id = $1`, [
          id,
        ]);
      }
    };
    const result = await asTenant(() =>
      projects.db.transaction(
        async () => {
          outerRuns++;
          return checkout.renameAfterRead(id, interfere);
        },
        { isolationLevel: 'repeatable read', retries: 1 },
      ),
    );
    expect(result).toBe('other!');
    expect(outerRuns).toBe(2);
    expect(checkout.calls).toBe(2);
  });

  it('refuses to join a transaction whose isolation level differs from the one asked for', async () => {
    await expect(
      asTenant(() =>
        projects.db.transaction(async () => checkout.renameAfterRead(1, async () => undefined)),
      ),
    ).rejects.toBeInstanceOf(InvalidOptionsError);
    expect(checkout.calls).toBe(0);
  });

  it('sends work that outlives the transaction to the pool, outside it', async () => {
    let fire!: () => void;
    const later = new Promise<void>((resolve) => (fire = resolve));
    let late!: Promise<boolean>;
    await checkout.inTransaction(async () => {
      // Set up inside the transaction (as a lazily started timer or listener would be), run
      // after it committed: it inherits the flow but not the finished transaction.
      late = later.then(async () => {
        await ledger.record('late');
        return ledger.db.inTransaction;
      });
      await ledger.record('inside');
    });
    fire();
    expect(await late).toBe(false);
    expect(await committed()).toEqual({ projects: 0, ledger: 2 });
  });

  describe('propagation', () => {
    it("'requires-new' commits on its own even when the caller rolls back", async () => {
      await expect(
        asTenant(() =>
          checkout.inTransaction(async () => {
            await projects.add('zeta');
            await ledger.recordIndependently('independent');
            throw new Error('caller fails');
          }),
        ),
      ).rejects.toThrow('caller fails');
      expect(await committed()).toEqual({ projects: 0, ledger: 1 });
    });

    it("'nested' runs in a savepoint: a caught failure undoes only its own writes", async () => {
      await asTenant(() =>
        checkout.inTransaction(async () => {
          await projects.add('eta');
          await ledger.tryRecord('kept', false);
          await expect(ledger.tryRecord('undone', true)).rejects.toThrow('nested failure');
          await projects.add('theta');
        }),
      );
      expect(await committed()).toEqual({ projects: 2, ledger: 1 });
      expect((await admin.query('SELECT note FROM ledger.entries')).rows).toEqual([
        { note: 'kept' },
      ]);
    });

    it("'nested' outside any transaction starts one", async () => {
      await expect(ledger.tryRecord('alone', true)).rejects.toThrow('nested failure');
      await ledger.tryRecord('alone', false);
      expect(await committed()).toEqual({ projects: 0, ledger: 1 });
    });

    it("'mandatory' joins the caller's transaction and refuses to run without one", async () => {
      await expect(ledger.recordInCallersTransaction('x')).rejects.toBeInstanceOf(
        TransactionRequiredError,
      );
      await expect(
        checkout.inTransaction(async () => {
          await ledger.recordInCallersTransaction('y');
          throw new Error('undo');
        }),
      ).rejects.toThrow('undo');
      expect(await committed()).toEqual({ projects: 0, ledger: 0 });
    });

    it("'never' refuses to run inside a transaction and runs outside one", async () => {
      await expect(checkout.inTransaction(() => ledger.report())).rejects.toBeInstanceOf(
        TransactionNotAllowedError,
      );
      expect(await ledger.report()).toBe(0);
    });

    it("'not-supported' suspends the caller's transaction for the call", async () => {
      await expect(
        checkout.inTransaction(async () => {
          await ledger.record('rolled back');
          await ledger.audit('audited');
          throw new Error('undo');
        }),
      ).rejects.toThrow('undo');
      expect((await admin.query('SELECT note FROM ledger.entries')).rows).toEqual([
        { note: 'audited' },
      ]);
    });

    it('refuses an unknown propagation', async () => {
      await expect(
        ledger.db.transaction(async () => undefined, {
          propagation: 'sometimes' as TransactionalOptions['propagation'],
        }),
      ).rejects.toBeInstanceOf(InvalidOptionsError);
    });
  });

  describe('inside a nested scope (savepoint rule)', () => {
    it('a joined call inside the nested scope runs in the savepoint and is undone with it', async () => {
      await asTenant(() =>
        checkout.inTransaction(async () => {
          await projects.add('outer');
          await expect(
            projects.db.transaction(
              async () => {
                await ledger.record('inside savepoint'); // joined: runs in the savepoint
                throw new Error('undo savepoint');
              },
              { propagation: 'nested' },
            ),
          ).rejects.toThrow('undo savepoint');
          expect(await ledger.count()).toBe(0);
        }),
      );
      expect(await committed()).toEqual({ projects: 1, ledger: 0 });
    });

    it('a joined call from outside the open nested scope is refused, as for the outer manager', async () => {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let entered!: () => void;
      const inside = new Promise<void>((resolve) => (entered = resolve));
      await asTenant(() =>
        checkout.inTransaction(async () => {
          const nested = ledger.db.transaction(
            async (sp) => {
              entered();
              await gate;
              await sp.execute("INSERT INTO {{tables.entries}} (note) VALUES ('nested')");
            },
            { propagation: 'nested' },
          );
          await inside;
          // This branch is outside the savepoint's scope: its statement would land in the
          // savepoint and be undone with it, so it is refused.
          await expect(projects.add('sibling')).rejects.toBeInstanceOf(SavepointActiveError);
          release();
          await nested;
          await projects.add('after');
        }),
      );
      expect(await committed()).toEqual({ projects: 1, ledger: 1 });
    });
  });

  it('keeps route and other metadata on decorated methods', () => {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- only its metadata is read
    const method = CheckoutService.prototype.marked;
    expect(Reflect.getMetadata('marker', method)).toBe('kept');
  });

  it('refuses bad options when the class is defined, not when the method first runs', () => {
    expect(() => Transactional({ retries: -1 })).toThrow(InvalidOptionsError);
    expect(() => Transactional({ propagation: 'sometimes' as never })).toThrow(InvalidOptionsError);
  });

  it('explains that an object outside the application cannot start a transaction', async () => {
    const loose = new CheckoutService(projects, ledger);
    await expect(loose.inTransaction(async () => 1)).rejects.toBeInstanceOf(
      TransactionalHostMissingError,
    );
  });

  it('the drain waits for an open ambient transaction and refuses new ones', async () => {
    const own = await boot();
    try {
      const drain = own.get(DrainController);
      const service = own.get(CheckoutService);
      const ownLedger = own.get(LedgerService);
      const ownDefault = own.get<SchemaDb>(getSchemaDbToken());
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let entered!: () => void;
      const inside = new Promise<void>((resolve) => (entered = resolve));
      const work = service.inTransaction(async () => {
        await ownLedger.record('before drain');
        entered();
        await gate;
        await ownLedger.record('during drain');
      });
      await inside;
      let drained = false;
      const report = drain.drain(30_000).then((r) => {
        drained = true;
        return r;
      });
      await expect(service.inTransaction(async () => 1)).rejects.toBeInstanceOf(
        DatabaseShuttingDownError,
      );
      await expect(ownDefault.fetchValue('SELECT 1')).rejects.toBeInstanceOf(
        DatabaseShuttingDownError,
      );
      expect(drained).toBe(false);
      expect(drain.busy.connections).toBe(1);
      release();
      await work;
      expect(await report).toMatchObject({ connections: 1, drained: 1, cancelled: 0 });
      expect((await admin.query('SELECT note FROM ledger.entries ORDER BY id')).rows).toEqual([
        { note: 'before drain' },
        { note: 'during drain' },
      ]);
    } finally {
      await own.close();
    }
  });
});
