#!/usr/bin/env node
// Point lookups and the HTTP suite through a Citus coordinator vs plain PostgreSQL, side by side,
// on one server.
//
//   node bench/citus.mjs COORDINATOR_URL [--tenants 20] [--rounds 3] [--seconds 5] [--http full]
//   CITUS_BENCH=1 bash compat/citus.sh        # builds Citus, starts a cluster, runs this too
//
// Not part of `npm run bench` (that needs no cluster). Both variants run on the coordinator's
// PostgreSQL 15 server, in two fresh databases: one spread over the cluster (the extension on
// every node, tenants created as distributed schemas on the workers), one without the citus
// extension (plain PostgreSQL: Citus is loaded but inactive there). Same library code, same
// `SchemaDb.fetchOne` lookup, same pool size; rounds alternate the variants. Figures are
// medians over rounds; the ratio is what to read (on one machine the workers share its cores
// with the coordinator, so the hop costs more CPU than it would on separate hosts).
// Nothing is asserted about speed; every row is checked to be the requested tenant's.
// Then the HTTP suite of `npm run bench` (bench/suites/http.mjs, unchanged: a Nest app, autocannon,
// every body checked) runs once on each of the two databases; `--http quick` (default) runs its
// quick configuration, `full` its full one, `off` skips it.
import { Command, InvalidArgumentError } from 'commander';
import pg from 'pg';
import { SchemaDb } from '../dist/index.js';
import { createTestDatabase } from '../dist/testing/index.js';
import httpSuite from './suites/http.mjs';
import { runClosedLoop } from './lib/load.mjs';
import { median, percentile } from './lib/stats.mjs';
import { fmtFixed, fmtInt, formatTable } from './lib/table.mjs';

const integer = (v) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a positive integer');
  return n;
};
const program = new Command('node bench/citus.mjs')
  .argument('<coordinator-url>', 'a Citus coordinator (cluster.sh up prints it)')
  .option('--tenants <n>', 'tenant schemas per variant', integer, 20)
  .option('--rounds <n>', 'rounds per variant', integer, 3)
  .option('--seconds <n>', 'seconds per round', integer, 5)
  .option('--concurrency <n>', 'workers issuing lookups', integer, 32)
  .option('--http <mode>', 'the HTTP suite: quick, full or off', 'quick')
  .parse();
const [serverUrl] = program.args;
const options = program.opts();
const ROWS = 100;
const log = (m) => console.error(`[bench:citus] ${m}`);

async function setUp(label, database, distributed) {
  const pool = new pg.Pool({ connectionString: database.url, max: 10, application_name: label });
  pool.on('error', () => undefined);
  const tenants = Array.from(
    { length: options.tenants },
    (_, i) => `tenant_${String(i).padStart(3, '0')}`,
  );
  for (const schema of tenants) {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      if (distributed) await client.query('SET LOCAL citus.enable_schema_based_sharding TO on');
      await client.query(`CREATE SCHEMA ${schema}`);
      await client.query(
        `CREATE TABLE ${schema}.items (id int PRIMARY KEY, tenant text NOT NULL, payload text NOT NULL)`,
      );
      await client.query(
        `INSERT INTO ${schema}.items SELECT g, $1, md5(g::text) FROM generate_series(1, ${ROWS}) g`,
        [schema],
      );
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }
  const dbs = tenants.map((t) => SchemaDb.create(pool, t));
  return { label, pool, tenants, dbs };
}

async function round(variant, seed) {
  const result = await runClosedLoop({
    concurrency: options.concurrency,
    durationMs: options.seconds * 1000,
    seed,
    operation: async (random) => {
      const t = random.int(variant.tenants.length);
      const id = 1 + random.int(ROWS);
      const row = await variant.dbs[t].fetchOne(
        'SELECT id, tenant FROM {{tables.items}} WHERE id = $1',
        [id],
      );
      return row?.id === id && row.tenant === variant.tenants[t];
    },
  });
  if (result.errors > 0 || result.mismatches > 0) {
    throw new Error(
      `${variant.label}: ${result.errors} errors, ${result.mismatches} wrong rows (${result.firstError?.message ?? ''})`,
    );
  }
  const sorted = result.latencies.sorted();
  return {
    qps: (result.operations / result.elapsedMs) * 1000,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
  };
}

/**
 * Runs the HTTP suite on plain PostgreSQL, then on a database spread over the cluster (its
 * tenants distributed), and prints the tenant-routed endpoint's requests/s side by side.
 */
async function compareHttp(plainUrl) {
  const runs = [
    { label: 'plain PostgreSQL 15', createDatabase: async () => ({ url: plainUrl }) },
    {
      label: 'Citus coordinator',
      createDatabase: async (prefix) => {
        const db = await createTestDatabase({ serverUrl, prefix });
        cleanups.push(() => db.drop());
        return db;
      },
    },
  ];
  const rows = [];
  for (const run of runs) {
    log(`HTTP suite (${options.http}) on ${run.label}`);
    const deferred = [];
    try {
      const result = await httpSuite.run({
        quick: options.http !== 'full',
        serverUrl,
        log: (m) => log(`http, ${run.label}: ${m}`),
        defer: (fn) => deferred.push(fn),
        createDatabase: run.createDatabase,
      });
      if (result.failures.length > 0) throw new Error(result.failures.join('; '));
      for (const r of result.data.results) rows.push({ run: run.label, ...r });
    } finally {
      while (deferred.length)
        await deferred
          .pop()()
          .catch(() => undefined);
    }
  }
  const baseline = new Map(rows.filter((r) => r.run === runs[0].label).map((r) => [r.variant, r]));
  console.log(
    formatTable(
      [
        { key: 'run', label: 'server', align: 'left' },
        { key: 'label', label: 'endpoint', align: 'left' },
        { key: 'rps', label: 'req/s', format: fmtInt },
        { key: 'ratio', label: 'vs plain', format: fmtFixed(2) },
        { key: 'p50Ms', label: 'p50 ms', format: fmtFixed(2) },
        { key: 'p99Ms', label: 'p99 ms', format: fmtFixed(2) },
      ],
      rows.map((r) => ({ ...r, ratio: r.rps / baseline.get(r.variant).rps })),
      { markdown: true },
    ),
  );
}

const cleanups = [];
let exitCode = 0;
try {
  const citusDb = await createTestDatabase({ serverUrl, prefix: 'bench_citus' });
  cleanups.push(() => citusDb.drop());
  const plainUrl = new URL(serverUrl);
  const plainName = `bench_plain_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${plainName}`);
  await admin.end();
  cleanups.push(async () => {
    const c = new pg.Client({ connectionString: serverUrl });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${plainName} WITH (FORCE)`);
    await c.end();
  });
  plainUrl.pathname = `/${plainName}`;
  log(`setting up ${options.tenants} tenants × ${ROWS} rows in each variant`);
  const variants = [
    await setUp('plain PostgreSQL 15', { url: plainUrl.toString() }, false),
    await setUp('Citus coordinator', citusDb, true),
  ];
  cleanups.push(() => Promise.all(variants.map((v) => v.pool.end())));
  const samples = new Map(variants.map((v) => [v.label, []]));
  for (const v of variants) await round(v, 1); // warm-up
  for (let r = 0; r < options.rounds; r++) {
    const order = r % 2 === 0 ? variants : [...variants].reverse();
    for (const v of order) {
      const s = await round(v, 100 + r);
      samples.get(v.label).push(s);
      log(`round ${r + 1}: ${v.label} ${fmtInt(s.qps)} lookups/s`);
    }
  }
  const baseline = median(samples.get(variants[0].label).map((s) => s.qps));
  const rows = variants.map((v) => {
    const s = samples.get(v.label);
    const qps = median(s.map((x) => x.qps));
    return {
      variant: v.label,
      qps,
      ratio: qps / baseline,
      p50: median(s.map((x) => x.p50)),
      p99: median(s.map((x) => x.p99)),
    };
  });
  console.log(
    formatTable(
      [
        { key: 'variant', label: 'variant', align: 'left' },
        { key: 'qps', label: 'lookups/s', format: fmtInt },
        { key: 'ratio', label: 'vs plain', format: fmtFixed(2) },
        { key: 'p50', label: 'p50 ms', format: fmtFixed(2) },
        { key: 'p99', label: 'p99 ms', format: fmtFixed(2) },
      ],
      rows,
      { markdown: true },
    ),
  );
  console.log(
    `${options.tenants} tenants, ${options.concurrency} workers, pool max 10, medians of ${options.rounds} rounds of ${options.seconds} s; one machine.`,
  );
  if (options.http !== 'off') await compareHttp(plainUrl.toString());
} catch (err) {
  console.error(`bench:citus failed: ${err.message}`);
  exitCode = 1;
} finally {
  while (cleanups.length)
    await cleanups
      .pop()()
      .catch(() => undefined);
}
process.exit(exitCode);
