// Read replicas: the same point reads through `db.fetchOne` on the primary alone vs
// `db.replica().fetchOne` with one streaming replica, side by side; then a "write, then read"
// job under both read-your-writes modes ('primary': reads after a write go to the primary;
// 'lsn': the first read after a write asks the primary for its WAL position and reads a replica
// that has replayed it, else the primary). Both servers run on this same machine from the
// embedded binaries (startEmbeddedReplication), so the replica adds no CPU: read the figures
// as the cost of routing, not as the capacity a second machine would add.
// Correctness: every read returns the asked row; every read in a job sees the job's own write.
import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DatabaseModule, getSchemaDbToken } from '../../dist/index.js';
import { DatabaseMonitor } from '../../dist/observability/index.js';
import { DrainController } from '../../dist/advanced.js';
import { startEmbeddedReplication } from '../../dist/testing/index.js';
import { runClosedLoop } from '../lib/load.mjs';
import { median, percentile, round } from '../lib/stats.mjs';
import { fmtFixed, fmtInt } from '../lib/table.mjs';

const ROWS = 10_000;
const CONCURRENCY = 32;
const POOL_MAX = 10;
const FULL = { rounds: 5, roundMs: 5000, warmupMs: 2000 };
const QUICK = { rounds: 2, roundMs: 800, warmupMs: 300 };

async function boot(pair, replicas, readYourWrites = 'primary') {
  class AppModule {}
  Module({
    imports: [
      DatabaseModule.forRoot({
        connection: pair.primary.url,
        pool: { max: POOL_MAX },
        schemas: { bench: {} },
        ...(replicas
          ? { replicas: { connections: [pair.replica.url], max: POOL_MAX, readYourWrites, checkIntervalMs: 100 } }
          : {}),
      }),
    ],
  })(AppModule);
  const app = await NestFactory.createApplicationContext(AppModule, { logger: ['error', 'warn'] });
  return {
    app,
    db: app.get(getSchemaDbToken('bench')),
    drain: app.get(DrainController),
    monitor: app.get(DatabaseMonitor),
  };
}

const READ_SQL = 'SELECT id, payload FROM {{tables.items}} WHERE id = $1';

const VARIANTS = [
  { key: 'P', label: '(P) primary alone: db.fetchOne', replicas: false, kind: 'read' },
  { key: 'R', label: '(R) primary + replica: db.replica().fetchOne', replicas: true, kind: 'read' },
  { key: 'WP', label: "(WP) job: insert + 3 replica reads, readYourWrites 'primary'", replicas: true, mode: 'primary', kind: 'job' },
  { key: 'WL', label: "(WL) job: insert + 3 replica reads, readYourWrites 'lsn'", replicas: true, mode: 'lsn', kind: 'job' },
];

function operationFor(variant, { db, drain }) {
  if (variant.kind === 'read') {
    const reader = variant.replicas ? db.replica() : db;
    return async (random) => {
      const id = 1 + random.int(ROWS);
      const row = await reader.fetchOne(READ_SQL, [id]);
      return row?.id === id;
    };
  }
  return (random) =>
    drain.admit(async () => {
      const payload = `w${random.int(1e9)}`;
      const { id } = await db.fetchOne('INSERT INTO {{tables.writes}} (payload) VALUES ($1) RETURNING id', [payload]);
      let ok = true;
      for (let i = 0; i < 3; i++) {
        const seen = await db.replica().fetchValue('SELECT payload FROM {{tables.writes}} WHERE id = $1', [id]);
        ok &&= seen === payload;
      }
      return ok;
    });
}

export default {
  name: 'read-replicas',
  description: 'point reads on the primary alone vs through a streaming replica; read-your-writes modes',
  async run(ctx) {
    const config = ctx.quick ? QUICK : FULL;
    const failures = [];
    const notes = [];
    ctx.log('  starting a primary and a streaming replica (embedded binaries)…');
    const pair = await startEmbeddedReplication({ settings: { synchronous_commit: 'on' } });
    ctx.defer(() => pair.stop());
    const setup = await boot(pair, false);
    await setup.db.execute(`CREATE SCHEMA IF NOT EXISTS bench`);
    await setup.db.execute(
      `CREATE TABLE {{tables.items}} (id int PRIMARY KEY, payload text NOT NULL);
       INSERT INTO {{tables.items}} SELECT g, md5(g::text) FROM generate_series(1, ${ROWS}) g;
       CREATE TABLE {{tables.writes}} (id bigserial PRIMARY KEY, payload text NOT NULL)`,
    );
    await setup.app.close();

    const apps = new Map();
    for (const v of VARIANTS) {
      const app = await boot(pair, v.replicas, v.mode);
      apps.set(v.key, app);
      ctx.defer(() => app.app.close());
    }
    const samples = new Map(VARIANTS.map((v) => [v.key, []]));
    for (const v of VARIANTS) {
      await runClosedLoop({ concurrency: CONCURRENCY, durationMs: config.warmupMs, seed: 1, operation: operationFor(v, apps.get(v.key)), record: false });
    }
    for (let round_ = 0; round_ < config.rounds; round_++) {
      const order = round_ % 2 === 0 ? VARIANTS : [...VARIANTS].reverse();
      for (const v of order) {
        const app = apps.get(v.key);
        const readsBefore = app.monitor.getReplicas()?.[0]?.reads ?? 0;
        const run = await runClosedLoop({ concurrency: CONCURRENCY, durationMs: config.roundMs, seed: 100 + round_, operation: operationFor(v, app) });
        const replicaReads = (app.monitor.getReplicas()?.[0]?.reads ?? 0) - readsBefore;
        const reads = v.kind === 'read' ? run.operations : run.operations * 3;
        if (run.errors > 0) failures.push(`${v.key}: ${run.errors} failed operation(s), first: ${run.firstError?.message}`);
        if (run.mismatches > 0) failures.push(`${v.key}: ${run.mismatches} operation(s) read a wrong or stale row`);
        const sorted = run.latencies.sorted();
        samples.get(v.key).push({
          opsPerSecond: (run.operations / run.elapsedMs) * 1000,
          p50: percentile(sorted, 50),
          p99: percentile(sorted, 99),
          replicaShare: v.replicas ? replicaReads / Math.max(1, reads) : 0,
        });
        ctx.log(`  ${v.key.padEnd(2)} round ${round_ + 1}: ${fmtInt((run.operations / run.elapsedMs) * 1000)} ops/s`);
      }
    }
    const baseline = median(samples.get('P').map((s) => s.opsPerSecond));
    const jobBaseline = median(samples.get('WP').map((s) => s.opsPerSecond));
    const results = VARIANTS.map((v) => {
      const s = samples.get(v.key);
      const ops = median(s.map((x) => x.opsPerSecond));
      return {
        key: v.key,
        label: v.label,
        opsPerSecond: ops,
        ratio: v.kind === 'read' ? ops / baseline : ops / jobBaseline,
        p50: median(s.map((x) => x.p50)),
        p99: median(s.map((x) => x.p99)),
        replicaShare: median(s.map((x) => x.replicaShare)),
      };
    });
    notes.push('read-replicas: primary and replica share this machine\'s cores; (R) measures routing cost and spreading, not added capacity');
    if (ctx.quick) notes.push(`read-replicas: quick mode, ${config.rounds} rounds of ${config.roundMs} ms`);
    return {
      failures,
      notes,
      data: { config: { ...config, rows: ROWS, concurrency: CONCURRENCY, poolMax: POOL_MAX }, results },
      tables: [
        {
          title: `Read replicas: ${CONCURRENCY} workers, pool max ${POOL_MAX} per server, medians of ${config.rounds} round(s); (R) vs (P), (WL) vs (WP)`,
          columns: [
            { key: 'label', label: 'variant', align: 'left' },
            { key: 'opsPerSecond', label: 'ops/s', format: fmtInt },
            { key: 'ratio', label: 'ratio', format: fmtFixed(2) },
            { key: 'p50', label: 'p50 ms', format: fmtFixed(2) },
            { key: 'p99', label: 'p99 ms', format: fmtFixed(2) },
            { key: 'replicaShare', label: 'reads on replica', format: (v) => `${round(v * 100, 0)} %` },
          ],
          rows: results,
        },
      ],
    };
  },
};
