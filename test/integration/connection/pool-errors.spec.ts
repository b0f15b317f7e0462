import pg from 'pg';
import {
  DatabaseConnectionError,
  PoolAcquireTimeoutError,
  PoolClosedError,
  SchemaDb,
  type PoolOptions,
} from '../../../lib/index.js';
import { createPool } from '../../../lib/connection/create-pool.js';
import { adminPool, useTestDatabase } from '../../support/database.js';
import { RecordingLogger } from '../../support/logs.js';
import { holdTransaction } from '../../support/hold.js';

describe('pool error handling', () => {
  const database = useTestDatabase();
  let admin: pg.Pool;
  const opened: pg.Pool[] = [];

  function open(pool: PoolOptions = {}, logger = new RecordingLogger()) {
    const created = createPool({ connection: database.current.url, pool }, logger);
    opened.push(created);
    return { pool: created, db: SchemaDb.create(created, null), logger };
  }
  const terminate = (pid: number) => admin.query('SELECT pg_terminate_backend($1)', [pid]);

  beforeAll(() => {
    admin = adminPool(database.current.url);
  });
  afterEach(async () => {
    await Promise.all(
      opened
        .splice(0)
        .filter((p) => !p.ended)
        .map((p) => p.end()),
    );
  });
  afterAll(() => admin.end());

  it('returns every client after a burst of failing queries', async () => {
    const { pool, db } = open({ max: 3 });
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) =>
        i % 2 ? db.fetchAll('SELECT * FROM missing_table') : db.fetchValue('SELECT 1/0'),
      ),
    );
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    expect(pool.totalCount).toBeLessThanOrEqual(3);
    expect(pool.idleCount).toBe(pool.totalCount);
    expect(pool.waitingCount).toBe(0);
  });

  it('keeps the connection after an ordinary SQL error instead of reconnecting', async () => {
    const { pool, db } = open({ max: 1 });
    const pid = await db.fetchValue<number>('SELECT pg_backend_pid()');
    await expect(db.execute('SELECT * FROM nowhere')).rejects.toMatchObject({ code: '42P01' });
    expect(await db.fetchValue('SELECT pg_backend_pid()')).toBe(pid);
    expect(pool.totalCount).toBe(1);
  });

  it('survives an idle backend terminated by the server and reconnects', async () => {
    const { pool, db, logger } = open({ max: 1 });
    const pid = await db.fetchValue<number>('SELECT pg_backend_pid()');
    const warned = logger.waitFor(/Idle connection .* failed and was discarded/);
    await terminate(pid!);
    const warning = await warned;
    expect(warning).toContain('57P01');
    expect(pool.totalCount).toBe(0);
    const next = await db.fetchValue<number>('SELECT pg_backend_pid()');
    expect(next).not.toBe(pid);
  });

  it('discards a connection killed inside a transaction and serves the next one', async () => {
    const { pool, db } = open({ max: 2 });
    await expect(
      db.transaction(async (tx) => {
        const pid = await tx.fetchValue<number>('SELECT pg_backend_pid()');
        await terminate(pid!);
        await tx.fetchValue('SELECT 1');
      }),
    ).rejects.toThrow();
    expect(pool.idleCount).toBe(pool.totalCount);
    expect(await db.transaction((tx) => tx.fetchValue('SELECT 42'))).toBe(42);
  });

  it('fails fast with PoolAcquireTimeoutError when the pool is exhausted', async () => {
    const { db } = open({ max: 1, acquireTimeoutMs: 150 });
    const held = await holdTransaction(db);
    const error = await db.fetchValue('SELECT 1').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PoolAcquireTimeoutError);
    expect(error).toMatchObject({ timeoutMs: 150, max: 1 });
    expect((error as Error).message).toMatch(/pool max 1/);
    await held.release();
    expect(await db.fetchValue('SELECT 1')).toBe(1);
  });

  it('applies statement_timeout on the server and keeps the connection usable', async () => {
    const { db } = open({ max: 1, statementTimeoutMs: 100 });
    const pid = await db.fetchValue('SELECT pg_backend_pid()');
    await expect(db.execute('SELECT pg_sleep(10)')).rejects.toMatchObject({ code: '57014' });
    expect(await db.fetchValue('SELECT pg_backend_pid()')).toBe(pid);
  });

  it('sets the session limits and application name from the options', async () => {
    const { db } = open({
      statementTimeoutMs: 1234,
      idleInTransactionTimeoutMs: 5678,
      lockTimeoutMs: 910,
      applicationName: 'svc-a',
    });
    const row = await db.fetchOne(
      `SELECT current_setting('statement_timeout') AS st,
              current_setting('idle_in_transaction_session_timeout') AS iit,
              current_setting('lock_timeout') AS lt,
              current_setting('application_name') AS app`,
    );
    expect(row).toEqual({ st: '1234ms', iit: '5678ms', lt: '910ms', app: 'svc-a' });
  });

  it('has production defaults for the server-side limits', async () => {
    const { db } = open();
    const row = await db.fetchOne(
      `SELECT current_setting('statement_timeout') AS st,
              current_setting('idle_in_transaction_session_timeout') AS iit`,
    );
    expect(row).toEqual({ st: '30s', iit: '1min' });
  });

  it('ends a session left idle in a transaction, freeing its locks', async () => {
    const { pool, db } = open({ max: 2, idleInTransactionTimeoutMs: 100 });
    await expect(
      db.transaction(async (tx) => {
        await tx.execute('CREATE TABLE idle_lock (id int)');
        const pid = await tx.fetchValue<number>('SELECT pg_backend_pid()');
        // Wait until the server has ended the idle session (no fixed sleep: ask it).
        for (;;) {
          const alive = await admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid]);
          if (alive.rowCount === 0) break;
        }
        await tx.execute('SELECT 1');
      }),
    ).rejects.toThrow();
    expect(pool.idleCount).toBe(pool.totalCount);
    expect(await db.fetchValue("SELECT to_regclass('idle_lock')::text")).toBeNull();
  });

  it('gives a slot back once the server ends the session of a callback that never settles', async () => {
    const { pool, db } = open({
      max: 2,
      idleInTransactionTimeoutMs: 300,
      acquireTimeoutMs: 15_000,
    });
    const stuck: Promise<unknown>[] = [];
    const started: Promise<void>[] = [];
    for (let i = 0; i < 2; i++) {
      let entered!: () => void;
      started.push(new Promise<void>((resolve) => (entered = resolve)));
      // Awaits something that never happens: its transaction never commits or rolls back.
      const never = db.transaction(async (tx) => {
        await tx.execute('SELECT 1');
        entered();
        await new Promise(() => undefined);
      });
      never.catch(() => undefined);
      stuck.push(never);
    }
    await Promise.all(started);
    expect(pool.idleCount).toBe(0);
    // Both slots are held; the server ends both sessions after 300 ms idle in a transaction,
    // and that must free them well within the acquire timeout.
    expect(await db.fetchValue('SELECT 42')).toBe(42);
    expect(await db.fetchValue('SELECT 43')).toBe(43);
    expect(pool.totalCount).toBeLessThanOrEqual(2);
  });

  it('never puts the password in connection errors', async () => {
    const url = new URL(database.current.url);
    url.password = 'Sekr3t-Passw0rd';
    const pool = createPool({ connection: url.toString(), pool: { max: 1 } });
    opened.push(pool);
    const error = await SchemaDb.create(pool, null)
      .fetchValue('SELECT 1')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatabaseConnectionError);
    expect(String((error as Error).message)).not.toContain('Sekr3t-Passw0rd');
    expect((error as Error).message).toMatch(/refused the connection/);
  });

  it('names an unreachable server without the password', async () => {
    const pool = createPool({
      connection: 'postgres://app:Sekr3t-Passw0rd@127.0.0.1:1/appdb',
      pool: { max: 1, acquireTimeoutMs: 2_000 },
    });
    opened.push(pool);
    const error = (await SchemaDb.create(pool, null)
      .fetchValue('SELECT 1')
      .catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(DatabaseConnectionError);
    expect(error.message).toContain('app@127.0.0.1:1/appdb');
    expect(error.message).not.toContain('Sekr3t');
  });

  it('refuses work after the pool has ended', async () => {
    const { pool, db } = open();
    await pool.end();
    await expect(db.fetchValue('SELECT 1')).rejects.toBeInstanceOf(PoolClosedError);
  });
});
