import { ConsoleLogger, Logger, type LoggerService } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import pg from 'pg';
import {
  DatabaseModule,
  TenantNotFoundError,
  TenantService,
  TenantSuspendedError,
  type TenancyOptions,
} from '../../../../lib/index.js';
import { DatabaseMonitor } from '../../../../lib/observability/index.js';
import { TenantRegistry } from '../../../../lib/tenancy/index.js';
import { adminPool, useTestDatabase } from '../../../support/database.js';
import { RecordingLogger } from '../../../support/logs.js';
import { useMigrationFolders } from '../../../support/migrations.js';
import {
  startLossyProxy,
  startSilentProxy,
  type LossyProxy,
  type SilentProxy,
} from '../../../support/tcp-proxy.js';
import { jest } from '@jest/globals';

const FILES = { '001_projects.sql': 'CREATE TABLE {{tables.projects}} (id serial PRIMARY KEY);' };
const BOUND_MS = 1_000;

/** What `require(id)` answers: 'active', 'suspended' or 'unknown'. */
async function answer(registry: TenantRegistry, id: string): Promise<string> {
  try {
    await registry.require(id);
    return 'active';
  } catch (err) {
    if (err instanceof TenantSuspendedError) return 'suspended';
    if (err instanceof TenantNotFoundError) return 'unknown';
    throw err;
  }
}

/**
 * Asks `registry` about `id` every few ms until `until` holds for an answer whose lookup started
 * at least `bound` after `since`; every such answer must satisfy `until` (nothing older than the
 * bound is ever served). Answers before then may be either.
 */
async function expectWithinBound(
  registry: TenantRegistry,
  id: string,
  since: number,
  expected: string,
  bound = BOUND_MS,
  observeMs = 2 * BOUND_MS,
): Promise<void> {
  const stopAt = since + bound + observeMs;
  for (;;) {
    const startedAt = performance.now();
    const got = await answer(registry, id);
    if (startedAt >= since + bound)
      expect({ id, got, late: true }).toEqual({ id, got: expected, late: true });
    if (startedAt >= stopAt) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Holds the next read of the whole registry table once it has read its rows (its snapshot is
 * taken), until `release()`; later reads pass.
 */
function holdNextTableRead(registry: TenantRegistry) {
  const store = registry.store;
  const snapshot = store.snapshot.bind(store);
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let read!: () => void;
  const taken = new Promise<void>((resolve) => (read = resolve));
  store.snapshot = async (onPage) => {
    store.snapshot = snapshot;
    const pages: Parameters<typeof onPage>[0][] = [];
    await snapshot((rows) => pages.push(rows));
    read();
    await held;
    for (const rows of pages) onPage(rows);
  };
  return { taken, release };
}

// These steps start processes and wait on other sessions; a busy machine outlasts Jest's default.
jest.setTimeout(120_000);

describe('registry sync: every instance converges within maxStalenessMs', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;
  let proxy: SilentProxy;
  let lossy: LossyProxy | undefined;
  const apps: TestingModule[] = [];

  async function boot(tenancy: TenancyOptions, directConnection?: string, logger?: LoggerService) {
    const builder = Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          ...(directConnection ? { directConnection } : {}),
          pool: { max: 4 },
          tenancy: { interceptor: false, maxStalenessMs: BOUND_MS, ...tenancy },
        }),
      ],
    });
    const app = await (logger ? builder.setLogger(logger) : builder).compile();
    apps.push(app);
    await app.init();
    const registry = app.get(TenantRegistry);
    await registry.whenSynced();
    return {
      app,
      tenants: app.get(TenantService),
      registry,
      monitor: app.get(DatabaseMonitor),
    };
  }

  beforeAll(async () => {
    admin = adminPool(database.current.url);
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
    await proxy?.close();
    await lossy?.close();
    lossy = undefined;
    Logger.overrideLogger(new ConsoleLogger());
  });
  afterAll(() => admin.end());

  it('a listener that goes silent without closing still gives up stale state within the bound', async () => {
    const migrations = await folder(FILES);
    proxy = await startSilentProxy(database.current.url);
    const a = await boot({ migrations, registrySchema: 'sync_silent' }, proxy.url);
    const b = await boot({ migrations, registrySchema: 'sync_silent' });
    await a.tenants.create('quiet');
    await a.tenants.create('doomed');
    expect(await answer(a.registry, 'quiet')).toBe('active');
    expect(await answer(a.registry, 'doomed')).toBe('active');
    expect(a.registry.syncState()).toMatchObject({ mode: 'listening', synced: true });

    proxy.silence();
    await b.tenants.suspend('quiet');
    const suspendedAt = performance.now();
    await b.tenants.drop('doomed');
    const droppedAt = performance.now();
    await b.tenants.create('newbie');
    const createdAt = performance.now();

    await expectWithinBound(a.registry, 'quiet', suspendedAt, 'suspended');
    await expectWithinBound(a.registry, 'doomed', droppedAt, 'unknown', BOUND_MS, 0);
    // An id never asked about is looked up once the view is no longer proven current.
    await expectWithinBound(a.registry, 'newbie', createdAt, 'active', BOUND_MS, 0);
    expect(a.registry.syncState().synced).toBe(false);
    // Health and metrics read the same state.
    expect(a.monitor.getTenantSync()).toMatchObject({ synced: false, maxStalenessMs: BOUND_MS });
    expect(a.monitor.getTenantSync()!.lagMs).toBeGreaterThan(BOUND_MS);

    // The silent listener is cut and replaced once the network carries traffic again.
    proxy.restore();
    await a.registry.whenSynced();
    expect(a.registry.syncState()).toMatchObject({ mode: 'listening', synced: true });
    expect(a.monitor.getTenantSync()).toMatchObject({ mode: 'listening', synced: true });
    await b.tenants.resume('quiet');
    await expectWithinBound(a.registry, 'quiet', performance.now(), 'active', BOUND_MS, 0);
  }, 60_000);

  it('changes lost between heartbeats on a listener that stays open converge within the bound', async () => {
    const migrations = await folder(FILES);
    lossy = await startLossyProxy(database.current.url);
    const a = await boot({ migrations, registrySchema: 'sync_lost' }, lossy.url);
    const b = await boot({ migrations, registrySchema: 'sync_lost' });
    await b.tenants.create('kept');
    await b.tenants.create('gone');
    await expectWithinBound(a.registry, 'gone', performance.now(), 'active', BOUND_MS, 0);
    expect(await answer(a.registry, 'kept')).toBe('active');

    // The registry's notices are lost; every heartbeat still arrives, so A stays synced.
    lossy.losing = /^pg_tenancy_sync_lost$/;
    await b.tenants.suspend('kept');
    const suspendedAt = performance.now();
    await b.tenants.drop('gone');
    const droppedAt = performance.now();
    await b.tenants.create('fresh');
    const createdAt = performance.now();
    // Five notices (suspend; dropping, delete; insert, activate) reach the proxy and are lost.
    const until = performance.now() + 5_000;
    while (lossy.dropped < 5 && performance.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    lossy.losing = false;
    expect(lossy.dropped).toBe(5);

    await expectWithinBound(a.registry, 'kept', suspendedAt, 'suspended');
    await expectWithinBound(a.registry, 'gone', droppedAt, 'unknown', BOUND_MS, 0);
    await expectWithinBound(a.registry, 'fresh', createdAt, 'active', BOUND_MS, 0);
    expect(a.registry.syncState()).toMatchObject({ mode: 'listening', synced: true });
  });

  it('a listener that reconnects while a reload runs reads the table again once it listens', async () => {
    const migrations = await folder(FILES);
    proxy = await startSilentProxy(database.current.url);
    const a = await boot({ migrations, registrySchema: 'sync_overlap' }, proxy.url);
    const b = await boot({ migrations, registrySchema: 'sync_overlap' });
    await b.tenants.create('late');
    // A learns of it by notification: within the bound, not at once.
    await expectWithinBound(a.registry, 'late', performance.now(), 'active', BOUND_MS, 0);

    // A reload (list()) reads the table, then is held before it merges what it read.
    const hold = holdNextTableRead(a.registry);
    const listing = a.tenants.list();
    await hold.taken;

    // The listener goes deaf, a change commits that only the table records, and the deaf
    // listener is replaced: the new one must load the table after its LISTEN, not reuse the
    // snapshot taken before it.
    proxy.silence();
    await b.tenants.suspend('late');
    proxy.restore(); // new connections pass again; the silenced one stays dead
    const query = Reflect.get(pg.Client.prototype, 'query') as (...a: unknown[]) => unknown;
    const listened = new Promise<void>((resolve) => {
      pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
        const result = query.apply(this, args);
        if (typeof args[0] === 'string' && /^LISTEN .*pg_tenancy_hb_/.test(args[0])) {
          // Runs before the listener's own continuation, which asks for the table at once.
          (result as Promise<unknown>).then(
            () => resolve(),
            () => undefined,
          );
        }
        return result;
      } as unknown as typeof pg.Client.prototype.query;
    });
    try {
      a.registry.resync('test: the listener went deaf');
      await listened;
    } finally {
      Reflect.set(pg.Client.prototype, 'query', query);
    }
    hold.release();
    await listing;
    await a.registry.whenSynced();
    expect(a.registry.syncState()).toMatchObject({ mode: 'listening', synced: true });
    const seen = a.registry.entries().find((e) => e.info.id === 'late')?.info.status;
    expect({ seen, answer: await answer(a.registry, 'late') }).toEqual({
      seen: 'suspended',
      answer: 'suspended',
    });
  });

  it('a listener that goes silent right after LISTEN is reconnected, not taken for a pooler', async () => {
    const migrations = await folder(FILES);
    proxy = await startSilentProxy(database.current.url);
    // Booted first: each boot installs its logger for the whole process.
    const b = await boot({ migrations, registrySchema: 'sync_deaf' });
    const logger = new RecordingLogger();
    // Polling so rare that only notifications can bring changes within the test.
    const a = await boot(
      { migrations, registrySchema: 'sync_deaf', pollIntervalMs: 600_000 },
      proxy.url,
      logger,
    );
    await b.tenants.create('steady');

    // The reconnecting listener loads the table once its LISTENs succeeded: the network goes
    // silent at that moment, so the probe heartbeat that follows never comes back.
    const store = a.registry.store;
    const snapshot = store.snapshot.bind(store);
    store.snapshot = (onPage) => {
      store.snapshot = snapshot;
      proxy.silence();
      return snapshot(onPage);
    };
    a.registry.resync('test: reconnect');
    const verdict = await logger.waitFor(
      /listener lost its connection \(the listener connection|Falling back to reloading/,
    );
    expect(verdict).toMatch(/the listener connection stopped answering/);

    proxy.restore();
    await a.registry.whenSynced();
    expect(a.registry.syncState()).toMatchObject({ mode: 'listening', synced: true });
    await b.tenants.suspend('steady');
    await expectWithinBound(a.registry, 'steady', performance.now(), 'suspended', BOUND_MS, 0);
  });

  it('a listener lost while it loads the table does not claim to listen', async () => {
    const migrations = await folder(FILES);
    proxy = await startSilentProxy(database.current.url);
    const logger = new RecordingLogger();
    const a = await boot({ migrations, registrySchema: 'sync_zombie' }, proxy.url, logger);

    // The reconnecting listener's load of the table is held after it read its rows.
    const hold = holdNextTableRead(a.registry);
    a.registry.resync('test: reconnect');
    await hold.taken;
    // Meanwhile its connection is terminated, and no new one can be opened.
    await admin.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'nestjs-pg-tenancy:listener'`,
    );
    await logger.waitFor(/lost its connection \(terminating connection/);
    proxy.silence();
    hold.release();
    await new Promise((resolve) => setImmediate(resolve));
    expect(a.registry.syncState().mode).toBe('reconnecting');

    proxy.restore();
    await a.registry.whenSynced();
    expect(a.registry.syncState()).toMatchObject({ mode: 'listening', synced: true });
    expect(logger.warnings.filter((w) => /Falling back/.test(w))).toEqual([]);
  });

  it("operators' plain SQL reaches every instance: UPDATE, DELETE and INSERT", async () => {
    const migrations = await folder(FILES);
    const a = await boot({ migrations, registrySchema: 'sync_sql' });
    await a.tenants.create('ops');
    await a.tenants.create('gone');
    await admin.query("UPDATE sync_sql.tenants SET status = 'suspended' WHERE id = 'ops'");
    await expectWithinBound(a.registry, 'ops', performance.now(), 'suspended', BOUND_MS, 0);
    await admin.query("DELETE FROM sync_sql.tenants WHERE id = 'gone'");
    await expectWithinBound(a.registry, 'gone', performance.now(), 'unknown', BOUND_MS, 0);
    await admin.query(
      "CREATE SCHEMA tenant_hand; INSERT INTO sync_sql.tenants (id, schema_name, status) VALUES ('hand', 'tenant_hand', 'active')",
    );
    await expectWithinBound(a.registry, 'hand', performance.now(), 'active', BOUND_MS, 0);
    const versions = await admin.query<{ version: string }>(
      "SELECT version FROM sync_sql.tenants WHERE id IN ('ops', 'hand') ORDER BY id",
    );
    expect(versions.rows.every((r) => Number(r.version) > 0)).toBe(true);
  });

  it('a reload never overwrites a change applied while it ran', async () => {
    const migrations = await folder(FILES);
    const a = await boot({ migrations, registrySchema: 'sync_reload' });
    await a.tenants.create('racer');
    // Enough rows that a reload takes a while.
    await admin.query(
      `INSERT INTO sync_reload.tenants (id, schema_name, status)
       SELECT 'bulk' || i, 'tenant_bulk' || i, 'active' FROM generate_series(1, 5000) AS i`,
    );
    await a.registry.reload();
    for (let trial = 0; trial < 10; trial++) {
      const target = trial % 2 === 0 ? 'suspended' : 'active';
      const reload = a.registry.reload();
      const change =
        target === 'suspended' ? a.tenants.suspend('racer') : a.tenants.resume('racer');
      await Promise.all([reload, change]);
      expect({ trial, got: await answer(a.registry, 'racer') }).toEqual({ trial, got: target });
    }
  });

  it('upgrades a registry made by an older release in place', async () => {
    // The wave-1 table: no version, no trigger, no 'dropping' state.
    await admin.query(`
      CREATE SCHEMA sync_old;
      CREATE TABLE sync_old.tenants (
        id text PRIMARY KEY, schema_name text NOT NULL UNIQUE,
        status text NOT NULL DEFAULT 'provisioning' CHECK (status IN ('provisioning', 'active', 'suspended')),
        metadata jsonb NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL DEFAULT now(),
        migrated_version integer NOT NULL DEFAULT 0, migrations_digest text,
        last_migrated_at timestamptz, last_error text);
      CREATE SCHEMA tenant_veteran;
      INSERT INTO sync_old.tenants (id, schema_name, status) VALUES ('veteran', 'tenant_veteran', 'active');`);
    // Two instances at once: the advisory lock keeps their DDL apart.
    const [a, b] = await Promise.all([
      boot({ registrySchema: 'sync_old' }, undefined),
      boot({ registrySchema: 'sync_old' }, undefined),
    ]);
    expect(await answer(a.registry, 'veteran')).toBe('active');
    await admin.query("UPDATE sync_old.tenants SET status = 'suspended' WHERE id = 'veteran'");
    await expectWithinBound(b.registry, 'veteran', performance.now(), 'suspended', BOUND_MS, 0);
    await b.tenants.drop('veteran');
    expect(await answer(a.registry, 'veteran')).toBe('unknown');
  });
});
