import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import pg from 'pg';
import { adminPool, useTestDatabase } from '../support/database.js';

const APP = resolve('test/fixtures/shutdown-app.mjs');

interface RunningApp {
  child: ChildProcess;
  url: string;
  output: () => string;
  /** Resolves with the first stdout line matching. */
  waitForLine: (match: RegExp) => Promise<string>;
  exited: Promise<{ code: number | null; at: number }>;
}

describe('graceful shutdown', () => {
  const database = useTestDatabase();
  let admin: pg.Pool;
  const children: ChildProcess[] = [];

  async function startApp(drainMs: number): Promise<RunningApp> {
    const child = spawn(process.execPath, [APP], {
      env: {
        ...process.env,
        DATABASE_URL: database.current.url,
        DRAIN_MS: String(drainMs),
        NO_COLOR: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let out = '';
    const waiters: Array<{ match: RegExp; resolve: (line: string) => void }> = [];
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      for (const w of [...waiters]) {
        const line = out.split('\n').find((l) => w.match.test(l));
        if (line) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const exited = new Promise<{ code: number | null; at: number }>((done) =>
      child.on('exit', (code) => done({ code, at: Date.now() })),
    );
    const waitForLine = (match: RegExp) =>
      new Promise<string>((resolveLine, reject) => {
        const line = out.split('\n').find((l) => match.test(l));
        if (line) return resolveLine(line);
        waiters.push({ match, resolve: resolveLine });
        void exited.then(() => reject(new Error(`app exited before printing ${match}:\n${out}`)));
      });
    const listening = await waitForLine(/LISTENING /);
    return {
      child,
      url: listening.split('LISTENING ')[1].trim(),
      output: () => out,
      waitForLine,
      exited,
    };
  }

  /** Polls the database until `sql` returns `expected` (a condition in PostgreSQL, not a sleep). */
  async function until(sql: string, expected: number, params: unknown[] = []) {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const n = (await admin.query(sql, params)).rows[0].n;
      if (n === expected) return;
      if (Date.now() > deadline) throw new Error(`${sql} stayed at ${n}, expected ${expected}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  beforeAll(async () => {
    admin = adminPool(database.current.url, 3);
    await admin.query('CREATE TABLE shutdown_rows (n int PRIMARY KEY)');
  });
  afterEach(() => {
    for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  });
  afterAll(() => admin.end());

  it('lets 50 open transactions commit, answers new requests 503, and exits 0 before the drain timeout', async () => {
    const app = await startApp(20_000);
    const lock = await admin.connect();
    try {
      await lock.query('SELECT pg_advisory_lock(4242)');
      const inFlight = Array.from({ length: 50 }, (_, n) =>
        fetch(`${app.url}/hold/${n}`).then(async (r) => ({
          status: r.status,
          body: await r.text(),
        })),
      );
      // All 50 transactions have inserted their row and wait on the lock.
      await until(
        "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
        50,
      );
      const signalled = Date.now();
      app.child.kill('SIGTERM');
      await app.waitForLine(/Shutting down: refusing new database work/);

      const late = await fetch(`${app.url}/ping`);
      expect(late.status).toBe(503);
      expect(late.headers.get('retry-after')).toBe('1');
      expect(await late.json()).toMatchObject({ error: 'DatabaseShuttingDownError' });

      await lock.query('SELECT pg_advisory_unlock(4242)');
      const results = await Promise.all(inFlight);
      expect(results.map((r) => r.status)).toEqual(Array(50).fill(200));
      const { code, at } = await app.exited;
      expect(code).toBe(0);
      expect(at - signalled).toBeLessThan(20_000);
      expect(app.output()).toMatch(
        /Shutdown drain finished in \d+ ms: 50 connection\(s\) drained, 0 cancelled at the timeout \(50 request\(s\) were in flight\)/,
      );
    } finally {
      lock.release();
    }
    const rows = await admin.query('SELECT count(*)::int AS n FROM shutdown_rows');
    expect(rows.rows[0].n).toBe(50);
  });

  it('waits for an admitted request paused between two queries while it holds no connection', async () => {
    const app = await startApp(20_000);
    const paused = fetch(`${app.url}/pause/100`).then(
      async (r) => ({ status: r.status, body: await r.json() }),
      (err: Error) => ({ status: 'failed', body: err.message }),
    );
    await app.waitForLine(/PAUSED 100/);
    app.child.kill('SIGTERM');
    const shutting = await app.waitForLine(/Shutting down: refusing new database work/);
    expect(shutting).toMatch(/for 1 request\(s\) and 0 connection\(s\) in flight/);
    app.child.kill('SIGUSR2');
    expect(await paused).toEqual({ status: 200, body: { n: 100 } });
    const { code } = await app.exited;
    expect(code).toBe(0);
    expect(app.output()).toMatch(
      /Shutdown drain finished in \d+ ms: 1 connection\(s\) drained, 0 cancelled at the timeout \(1 request\(s\) were in flight\)/,
    );
    const rows = await admin.query('SELECT n FROM shutdown_rows WHERE n IN (100, 101) ORDER BY n');
    expect(rows.rows).toEqual([{ n: 100 }, { n: 101 }]);
  });

  it('cancels a query that outlives the drain timeout and still exits 0', async () => {
    const app = await startApp(300);
    const slow = fetch(`${app.url}/sleep`).then(
      (r) => r.status,
      () => 'connection closed',
    );
    await until(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%'",
      1,
    );
    app.child.kill('SIGTERM');
    const { code } = await app.exited;
    expect(code).toBe(0);
    expect(app.output()).toMatch(
      /Shutdown drain finished in \d+ ms: 0 connection\(s\) drained, 1 cancelled at the timeout/,
    );
    expect(await slow).not.toBe(200);
    await until(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%'",
      0,
    );
  });
});
