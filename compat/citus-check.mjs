#!/usr/bin/env node
// Compatibility check: nestjs-pg-tenancy on a Citus cluster, schema-based sharding.
//
//   node compat/citus-check.mjs postgres://postgres@127.0.0.1:PORT/app
//
// Run it through `bash compat/citus.sh`, which builds Citus, starts a three-node cluster and
// passes the coordinator's URL. ASSUMES THE LIBRARY IS BUILT (imports ../dist). Works in a fresh
// database of its own (createTestDatabase spreads it over the cluster), dropped at the end, also
// on failure and at the deadline. One line per check; exit code 1 when any check failed.
//
//   1. tenants are distributed schemas spread over the workers; the registry stays local;
//   2. a suspension made by one instance reaches another by NOTIFY (the registry's trigger fires
//      on the coordinator), long before the staleness bound;
//   3. isolation: thousands of interleaved requests (reads, writes, transactions) over many
//      tenants, each through the ambient tenant context, see only their own tenant's rows;
//   4. `tenants move` (the CLI) moves a tenant with 100k rows to the other worker while the
//      tenant serves reads and writes: zero failed requests, every acknowledged write present,
//      the seeded rows intact (count and checksum);
//   5. the built sample app (sample-app/dist, unchanged options) boots on the coordinator in a
//      database of its own: its demo tenants and one created through its admin API are
//      distributed schemas, and projects and tasks are written and read back over HTTP.

import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NestFactory } from '@nestjs/core';
import pg from 'pg';
import { DatabaseModule, getTenantDbToken, TenantService } from '../dist/index.js';
import { TenantRegistry } from '../dist/tenancy/index.js';
import { createTestDatabase } from '../dist/testing/index.js';

const DEADLINE_MS = 240_000;
const TENANTS = 12;
const ROWS_PER_TENANT = 50;
const REQUESTS = 6_000;
const IN_FLIGHT = 40;
const BIG_ROWS = 100_000;
const LOAD_CLIENTS = 8;
const SAMPLE_APP_ADMIN_TOKEN = 'citus-check-admin-token-0123';
const here = dirname(fileURLToPath(import.meta.url));

const serverUrl = process.argv[2] ?? process.env.DATABASE_URL;
if (!serverUrl) {
  console.error('usage: node compat/citus-check.mjs COORDINATOR_URL');
  process.exit(2);
}

let failed = 0;
function report(status, name, detail) {
  if (status === 'FAIL') failed++;
  console.log(`${status.padEnd(5)} ${name}${detail ? ` — ${detail}` : ''}`);
}
async function check(name, fn) {
  try {
    const detail = await fn();
    report('PASS', name, detail);
  } catch (err) {
    report(
      'FAIL',
      name,
      err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err),
    );
  }
}
function assert(condition, message) {
  if (!condition) throw new Error(message);
}

const cleanups = [];
async function cleanup() {
  while (cleanups.length > 0) {
    const fn = cleanups.pop();
    await fn().catch((err) => console.error(`WARN  cleanup failed: ${err.message}`));
  }
}
const watchdog = setTimeout(async () => {
  report('FAIL', `deadline of ${DEADLINE_MS / 1000} s exceeded`, 'cleaning up');
  await cleanup();
  process.exit(1);
}, DEADLINE_MS);

const quietLogger = {
  log: () => undefined,
  warn: (m) => console.error(`WARN  ${m}`),
  error: (m) => console.error(`ERROR ${m}`),
  fatal: (m) => console.error(`FATAL ${m}`),
  debug: () => undefined,
  verbose: () => undefined,
};

async function openInstance(url, migrations, tenancy = {}) {
  const app = await NestFactory.createApplicationContext(
    DatabaseModule.forRoot({
      connection: url,
      pool: { max: 20, acquireTimeoutMs: 30_000 },
      // Latency during the move is reported by the check itself.
      slowQueryMs: 0,
      tenancy: { migrations, ...tenancy },
    }),
    { logger: quietLogger, abortOnError: false },
  );
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await app.close();
  };
  cleanups.push(close);
  return {
    app,
    close,
    tenants: app.get(TenantService),
    registry: app.get(TenantRegistry),
    tenantDb: app.get(getTenantDbToken()),
  };
}

/** Runs `count` operations, `inFlight` at a time. */
async function interleave(count, inFlight, op) {
  let next = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < count) await op(next++);
    }),
  );
}

function runCli(args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(here, '..', 'dist', 'cli', 'bin.js'), ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Starts the built sample app on `url`; resolves with its base URL and a `request` helper. */
async function startSampleApp(url) {
  const child = spawn(process.execPath, [join(here, '..', 'sample-app', 'dist', 'main.js')], {
    env: {
      ...process.env,
      DATABASE_URL: url,
      PORT: '0',
      NO_COLOR: '1',
      ADMIN_TOKEN: SAMPLE_APP_ADMIN_TOKEN,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  });
  let output = '';
  const base = await new Promise((resolve, reject) => {
    const collect = (chunk) => {
      output += chunk;
      const listening = /listening on (http:\/\/\S+)/.exec(output);
      if (listening) resolve(listening[1]);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    void exited.then((code) => reject(new Error(`the sample app exited (${code}):\n${output}`)));
  });
  const request = async (method, path, { token = SAMPLE_APP_ADMIN_TOKEN, body } = {}) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  return { request, output: () => output };
}

async function sampleAppCheck() {
  const database = await createTestDatabase({ serverUrl, prefix: 'citus_sample' });
  cleanups.push(() => database.drop());
  const app = await startSampleApp(database.url);
  const expectStatus = (res, status, what) =>
    assert(res.status === status, `${what}: HTTP ${res.status} ${JSON.stringify(res.body)}`);
  expectStatus(await app.request('GET', '/health'), 200, 'GET /health');
  expectStatus(
    await app.request('POST', '/admin/tenants', { body: { id: 'citus_app', plan: 'team' } }),
    201,
    'create a tenant',
  );
  const session = await app.request('POST', '/admin/tenants/citus_app/sessions', {
    body: { email: 'check@citus.example' },
  });
  expectStatus(session, 201, 'open a session');
  const user = { token: session.body.token };
  const project = await app.request('POST', '/projects', { ...user, body: { name: 'Shards' } });
  expectStatus(project, 201, 'create a project');
  assert(Number.isSafeInteger(project.body.id), `project id ${project.body.id} is not a number`);
  const path = `/projects/${project.body.id}/tasks`;
  for (const title of ['Place', 'Move']) {
    expectStatus(await app.request('POST', path, { ...user, body: { title } }), 201, 'add a task');
  }
  const tasks = await app.request('GET', path, user);
  expectStatus(tasks, 200, 'list tasks');
  assert(
    tasks.body.map((t) => t.title).join() === 'Place,Move',
    `tasks read back: ${JSON.stringify(tasks.body)}`,
  );
  const projects = await app.request('GET', '/projects', user);
  assert(
    projects.body.length === 1 && projects.body[0].name === 'Shards',
    `projects read back: ${JSON.stringify(projects.body)}`,
  );
  const admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  try {
    const { rows } = await admin.query(
      `SELECT n.nspname AS schema FROM pg_dist_schema d JOIN pg_namespace n ON n.oid = d.schemaid
        ORDER BY 1`,
    );
    const schemas = rows.map((r) => r.schema);
    assert(
      schemas.length >= 3 && schemas.some((s) => s.includes('citus_app')),
      `distributed schemas: ${schemas.join(', ') || 'none'} (want the demo tenants and citus_app)`,
    );
    return `project ${project.body.id} and 2 tasks written and read back; distributed schemas: ${schemas.join(', ')}`;
  } finally {
    await admin.end();
  }
}

async function main() {
  const database = await createTestDatabase({ serverUrl, prefix: 'citus_check' });
  cleanups.push(() => database.drop());
  const migrations = await mkdtemp(join(tmpdir(), 'citus-check-'));
  cleanups.push(() => rm(migrations, { recursive: true, force: true }));
  await writeFile(
    join(migrations, '001_items.sql'),
    `CREATE TABLE {{tables.items}} (
       id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
       tenant text NOT NULL,
       n bigint NOT NULL,
       payload text NOT NULL
     );`,
  );
  const admin = new pg.Pool({ connectionString: database.url, max: 4 });
  admin.on('error', () => undefined);
  cleanups.push(() => admin.end());

  const a = await openInstance(database.url, migrations);
  // A second instance with a long staleness bound: only a notification explains a quick update.
  const b = await openInstance(database.url, migrations, { maxStalenessMs: 60_000 });
  const ids = Array.from({ length: TENANTS }, (_, i) => `t${String(i).padStart(2, '0')}`);

  await check(
    'tenants are distributed schemas on the workers, the registry a local schema',
    async () => {
      for (const id of ids) await a.tenants.create(id);
      const placements = await a.tenants.placements();
      const nodes = new Set(placements.map((p) => p.node));
      assert(
        placements.every((p) => p.distributed && p.node),
        `not all distributed: ${JSON.stringify(placements)}`,
      );
      assert(nodes.size >= 2, `all tenants on one node: ${[...nodes].join(', ')}`);
      const { rows } = await admin.query(
        `SELECT count(*)::int AS n FROM pg_dist_schema WHERE schemaid = to_regnamespace('tenancy')`,
      );
      assert(rows[0].n === 0, 'the registry schema is distributed');
      const local = await admin.query(
        `SELECT count(*)::int AS n FROM pg_dist_partition WHERE logicalrelid = 'tenancy.tenants'::regclass`,
      );
      assert(local.rows[0].n === 0, 'the registry table is a Citus table');
      return `${TENANTS} tenants on ${nodes.size} workers (${[...nodes].join(', ')})`;
    },
  );

  await check('a change made by one instance reaches another by NOTIFY', async () => {
    await b.registry.whenSynced();
    const started = performance.now();
    await a.tenants.suspend(ids[0]);
    for (;;) {
      const entry = await b.registry.find(ids[0]);
      if (entry?.info.status === 'suspended') break;
      assert(
        performance.now() - started < 5_000,
        'instance B did not see the suspension within 5 s',
      );
      await new Promise((r) => setTimeout(r, 10));
    }
    const ms = performance.now() - started;
    await a.tenants.resume(ids[0]);
    return `seen in ${ms.toFixed(0)} ms (staleness bound 60 s)`;
  });

  await check(`isolation: ${REQUESTS} interleaved requests over ${TENANTS} tenants`, async () => {
    for (const id of ids) {
      const db = await a.tenants.db(id);
      await db.execute(
        `INSERT INTO {{tables.items}} (tenant, n, payload)
         SELECT $1, g, md5($1 || g) FROM generate_series(1, ${ROWS_PER_TENANT}) g`,
        [id],
      );
    }
    let foreign = 0;
    let rowsSeen = 0;
    await interleave(REQUESTS, IN_FLIGHT, async (i) => {
      const id = ids[(i * 7 + (i >> 3)) % ids.length];
      const rows = await a.tenants.run(id, async () => {
        switch (i % 4) {
          case 0:
            return a.tenantDb.fetchAll(
              'SELECT tenant FROM {{tables.items}} ORDER BY random() LIMIT 5',
            );
          case 1:
            return a.tenantDb.fetchAll(
              'INSERT INTO {{tables.items}} (tenant, n, payload) VALUES ($1, $2, $3) RETURNING tenant',
              [id, i, `r${i}`],
            );
          case 2:
            return a.tenantDb.transaction(async (tx) => {
              await tx.execute('UPDATE {{tables.items}} SET n = n + 1 WHERE n = $1', [
                i % ROWS_PER_TENANT,
              ]);
              return tx.fetchAll('SELECT tenant FROM {{tables.items}} WHERE n <= $1', [3]);
            });
          default:
            return a.tenantDb.fetchAll('SELECT DISTINCT tenant FROM {{tables.items}}');
        }
      });
      rowsSeen += rows.length;
      foreign += rows.filter((r) => r.tenant !== id).length;
    });
    assert(foreign === 0, `${foreign} rows of another tenant seen`);
    assert(rowsSeen > REQUESTS, `too few rows seen (${rowsSeen}): the check proves nothing`);
    return `${rowsSeen} rows seen, 0 from another tenant`;
  });

  await check(`tenants move: ${BIG_ROWS} rows moved under reads and writes`, async () => {
    const id = 'big';
    await a.tenants.create(id);
    const db = await a.tenants.db(id);
    await db.execute(
      `INSERT INTO {{tables.items}} (tenant, n, payload)
       SELECT 'big', g, md5(g::text) FROM generate_series(1, ${BIG_ROWS}) g`,
    );
    const fingerprint = () =>
      db.fetchOne(
        `SELECT count(*)::int AS count,
                md5(string_agg(id || ':' || n || ':' || payload, ',' ORDER BY id)) AS checksum
           FROM {{tables.items}} WHERE id <= ${BIG_ROWS}`,
      );
    const before = await fingerprint();
    const [placement] = await a.tenants.placements([id]);
    const nodes = (
      await admin.query(
        `SELECT nodename || ':' || nodeport AS node FROM pg_dist_node
        WHERE groupid <> 0 AND isactive AND noderole = 'primary'`,
      )
    ).rows.map((r) => r.node);
    const target = nodes.find((n) => n !== placement.node);
    assert(target, `no other worker than ${placement.node}`);

    let moving = true;
    let reads = 0;
    let failures = 0;
    let worst = 0;
    const acked = [];
    const errors = [];
    const load = Array.from({ length: LOAD_CLIENTS }, async (_, c) => {
      let k = 0;
      while (moving) {
        const started = performance.now();
        try {
          if (k++ % 2 === 0) {
            const n = 1 + ((c * 7919 + k * 104729) % BIG_ROWS);
            const row = await a.tenants.run(id, () =>
              a.tenantDb.fetchOne('SELECT payload FROM {{tables.items}} WHERE id = $1', [n]),
            );
            assert(row?.payload, `row ${n} missing during the move`);
            reads++;
          } else {
            const row = await a.tenants.run(id, () =>
              a.tenantDb.fetchOne(
                `INSERT INTO {{tables.items}} (tenant, n, payload) VALUES ('big', $1, $2) RETURNING id`,
                [-1, `w${c}-${k}`],
              ),
            );
            acked.push(row.id);
          }
        } catch (err) {
          failures++;
          if (errors.length < 3) errors.push(err.message);
        }
        worst = Math.max(worst, performance.now() - started);
      }
    });
    const started = performance.now();
    const moved = await runCli(
      ['tenants', 'move', id, '--to', target, '--tenant-migrations', migrations],
      { DATABASE_URL: database.url },
    );
    const moveMs = performance.now() - started;
    // Keep the load on briefly after the switch, so requests right after it count too.
    await new Promise((r) => setTimeout(r, 300));
    moving = false;
    await Promise.all(load);
    assert(moved.code === 0, `tenants move exited ${moved.code}: ${moved.stderr}${moved.stdout}`);
    const [after] = await a.tenants.placements([id]);
    assert(after.node === target, `tenant is on ${after.node}, not ${target}`);
    assert(failures === 0, `${failures} failed requests during the move: ${errors.join(' | ')}`);
    const now = await fingerprint();
    assert(now.count === before.count && now.checksum === before.checksum, 'seeded rows changed');
    const written = await db.fetchOne(
      `SELECT count(*)::int AS count FROM {{tables.items}} WHERE id = ANY($1::bigint[])`,
      [acked],
    );
    assert(
      written.count === acked.length,
      `${acked.length - written.count} acknowledged writes lost`,
    );
    assert(acked.length > 0 && reads > 0, 'no load ran during the move');
    const progressLines = moved.stderr.split('\n').filter((l) => l.includes('MiB')).length;
    return (
      `${placement.node} → ${target} in ${(moveMs / 1000).toFixed(1)} s (CLI, incl. start-up); ` +
      `${reads} reads + ${acked.length} writes, 0 failed, slowest ${worst.toFixed(0)} ms; ` +
      `count ${now.count} and checksum unchanged; ${progressLines} progress line(s)`
    );
  });
}

try {
  await main();
  await check('the sample app boots on the coordinator and serves its tenants', sampleAppCheck);
} catch (err) {
  report('FAIL', 'setup', err instanceof Error ? err.message : String(err));
} finally {
  await cleanup();
  clearTimeout(watchdog);
}
console.log(failed === 0 ? 'OK: Citus checks passed' : `FAILED: ${failed} check(s)`);
process.exit(failed === 0 ? 0 : 1);
