// HTTP end to end: one Nest app (Express) in this process on 127.0.0.1, two endpoints that read
// the same row the same way over the same pool (10 connections):
//   (A) GET /tenant/items/:id + x-tenant-id: tenant-routed, @InjectTenantDb() + {{tables.items}}
//   (B) GET /plain/items/:tenant/:id: @NoTenant() twin, the injected pg.Pool, hand-qualified SQL
// driven by autocannon in a child process (its own event loop), same connections and duration,
// a warm-up, then rounds alternating the order. Every response body is checked to be the row
// asked for, of the tenant asked for.
import 'reflect-metadata';
import { fork } from 'node:child_process';
import { Controller, Get, Inject, Module, NotFoundException, Param } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  DatabaseModule,
  getPoolToken,
  getTenantDbToken,
  NoTenant,
  quoteIdentifier,
  TenantService,
} from '../../dist/index.js';
import { mapLimit, writeMigrations } from '../lib/temp-migrations.mjs';
import { max, median, min, round } from '../lib/stats.mjs';
import { fmtFixed, fmtInt } from '../lib/table.mjs';

const POOL_MAX = 10;
const CONNECTIONS = 32;
const ROWS_PER_TENANT = 100;
const REGISTRY_SCHEMA = 'bench_http';

const FULL = { tenants: 50, rounds: 5, roundSec: 5, warmupSec: 3 };
const QUICK = { tenants: 10, rounds: 2, roundSec: 1.5, warmupSec: 1 };

const COLUMNS = 'id, tenant, payload';
const MIGRATIONS = {
  '001_items.sql':
    'CREATE TABLE {{tables.items}} (id int PRIMARY KEY, tenant text NOT NULL, payload text NOT NULL);\n',
  // `tenant` holds the schema name, read from the catalog: each row says whose it is. Templates
  // are not expanded inside string literals, so the table is named through its row type; one
  // INSERT … SELECT with no tenant table in the SELECT, which Citus also runs (bench/citus.mjs).
  '002_seed.sql': `INSERT INTO {{tables.items}} (id, tenant, payload)
SELECT g,
       (SELECT t.typnamespace::regnamespace::text FROM pg_type t
         WHERE t.oid = pg_typeof(NULL::{{tables.items}})),
       repeat(md5(g::text), 3)
  FROM generate_series(1, ${ROWS_PER_TENANT}) g;
`,
};

const tenantId = (i) => `t${String(i).padStart(3, '0')}`;

const VARIANTS = {
  tenant: {
    key: 'tenant',
    label: '(A) tenant-routed: x-tenant-id, @InjectTenantDb(), {{tables.items}}',
    short: '(A) tenant-routed',
    color: '#f28e2b',
  },
  plain: {
    key: 'plain',
    label: '(B) twin, @NoTenant(): injected pg.Pool, hand-qualified SQL',
    short: '(B) plain twin',
    color: '#4e79a7',
  },
};

/** The app module: both controllers, one DatabaseModule with a pool of POOL_MAX. */
function buildAppModule(url, migrationsDir, tenantIds) {
  class TenantItemsController {
    constructor(db) {
      this.db = db;
    }
    async item(id) {
      const row = await this.db.fetchOne(`SELECT ${COLUMNS} FROM {{tables.items}} WHERE id = $1`, [
        Number(id),
      ]);
      if (!row) throw new NotFoundException();
      return row;
    }
  }
  Inject(getTenantDbToken())(TenantItemsController, undefined, 0);
  Controller('tenant')(TenantItemsController);
  Get('items/:id')(
    TenantItemsController.prototype,
    'item',
    Object.getOwnPropertyDescriptor(TenantItemsController.prototype, 'item'),
  );
  Param('id')(TenantItemsController.prototype, 'item', 0);

  // The twin: what an app without the tenancy layer would write, SQL per tenant built once.
  const sqlByTenant = new Map(
    tenantIds.map((id) => [
      id,
      `SELECT ${COLUMNS} FROM ${quoteIdentifier(`tenant_${id}`)}."items" WHERE id = $1`,
    ]),
  );
  class PlainItemsController {
    constructor(pool) {
      this.pool = pool;
    }
    async item(tenant, id) {
      const sql = sqlByTenant.get(tenant);
      if (!sql) throw new NotFoundException();
      const { rows } = await this.pool.query(sql, [Number(id)]);
      if (!rows[0]) throw new NotFoundException();
      return rows[0];
    }
  }
  Inject(getPoolToken())(PlainItemsController, undefined, 0);
  NoTenant()(PlainItemsController);
  Controller('plain')(PlainItemsController);
  Get('items/:tenant/:id')(
    PlainItemsController.prototype,
    'item',
    Object.getOwnPropertyDescriptor(PlainItemsController.prototype, 'item'),
  );
  Param('tenant')(PlainItemsController.prototype, 'item', 0);
  Param('id')(PlainItemsController.prototype, 'item', 1);

  class AppModule {}
  Module({
    imports: [
      DatabaseModule.forRoot({
        connection: url,
        pool: { max: POOL_MAX, applicationName: 'bench_http' },
        tenancy: { registrySchema: REGISTRY_SCHEMA, migrations: migrationsDir },
      }),
    ],
    controllers: [TenantItemsController, PlainItemsController],
  })(AppModule);
  return AppModule;
}

/** The load generator child: `run(options)` → its result; `close()` ends it. */
function startLoadGenerator() {
  const child = fork(new URL('../fixtures/http-load.mjs', import.meta.url), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let seq = 0;
  const pending = new Map();
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.on('message', (message) => {
    const entry = pending.get(message.seq);
    if (!entry) return;
    pending.delete(message.seq);
    if (message.error) entry.reject(new Error(`load generator: ${message.error}`));
    else entry.resolve(message.result);
  });
  child.on('exit', (code) => {
    for (const entry of pending.values())
      entry.reject(new Error(`load generator exited (${code})`));
    pending.clear();
  });
  return {
    run(options) {
      return new Promise((resolve, reject) => {
        const id = ++seq;
        pending.set(id, { resolve, reject });
        child.send({ ...options, seq: id, type: 'run' });
      });
    },
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        if (child.connected) child.send({ type: 'exit' });
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

export default {
  name: 'http',
  description:
    'HTTP end to end (autocannon): a tenant-routed endpoint vs. its twin without tenancy, same app and pool',

  async run(ctx) {
    const config = ctx.quick ? QUICK : FULL;
    const notes = [];
    if (ctx.quick)
      notes.push(
        `quick mode: ${config.tenants} tenants, ${config.rounds} rounds of ${config.roundSec} s (full: ${FULL.tenants} tenants, ${FULL.rounds} rounds of ${FULL.roundSec} s)`,
      );
    const database = await ctx.createDatabase('bench_http');
    const migrations = await writeMigrations('bench-http-migrations', MIGRATIONS);
    ctx.defer(() => migrations.remove());

    const tenantIds = Array.from({ length: config.tenants }, (_, i) => tenantId(i));
    const app = await NestFactory.create(buildAppModule(database.url, migrations.dir, tenantIds), {
      logger: ['error', 'warn'],
    });
    let appClosed = false;
    const closeApp = async () => {
      if (appClosed) return;
      appClosed = true;
      await app.close();
    };
    ctx.defer(closeApp);
    await app.listen(0, '127.0.0.1');
    const { port } = app.getHttpServer().address();
    const url = `http://127.0.0.1:${port}`;

    const t0 = performance.now();
    const tenants = app.get(TenantService);
    await mapLimit(tenantIds, 4, (id) => tenants.create(id));
    ctx.log(
      `${config.tenants} tenants created with TenantService.create (${((performance.now() - t0) / 1000).toFixed(1)} s); app on ${url}`,
    );

    const load = startLoadGenerator();
    ctx.defer(() => load.close());
    const failures = [];
    const entries = Object.values(VARIANTS).map((variant) => ({
      variant,
      rounds: [],
      checked: 0,
      mismatches: 0,
      non200: 0,
      errors: 0,
      firstProblem: undefined,
    }));
    const drive = async (entry, durationSec, seed) => {
      const r = await load.run({
        url,
        variant: entry.variant.key,
        tenants: tenantIds,
        rows: ROWS_PER_TENANT,
        connections: CONNECTIONS,
        durationSec,
        seed,
      });
      entry.checked += r.checked;
      entry.mismatches += r.mismatches;
      entry.non200 += r.non200;
      entry.errors += r.errors + r.timeouts;
      entry.firstProblem ??= r.firstProblem;
      return r;
    };

    try {
      for (const entry of entries) {
        ctx.log(`  warm-up ${entry.variant.short} (${config.warmupSec} s)`);
        await drive(entry, config.warmupSec, 1e6);
      }
      for (let r = 0; r < config.rounds; r++) {
        const order = r % 2 === 0 ? entries : [...entries].reverse();
        for (const entry of order) {
          const res = await drive(entry, config.roundSec, 2e6 + r * 1000);
          entry.rounds.push({
            requests: res.ok,
            seconds: res.seconds,
            rps: round(res.rps),
            p50Ms: round(res.p50Ms, 3),
            p99Ms: round(res.p99Ms, 3),
            maxMs: round(res.maxMs, 2),
            loadGeneratorCpuMs: round(res.loadGeneratorCpuMs),
            mismatches: res.mismatches,
            non200: res.non200,
          });
          const last = entry.rounds.at(-1);
          ctx.log(
            `  round ${r + 1}/${config.rounds} ${entry.variant.short.padEnd(18)} ${fmtInt(last.rps).padStart(6)} req/s  p50 ${last.p50Ms.toFixed(2)} ms  p99 ${last.p99Ms.toFixed(2)} ms`,
          );
        }
      }
    } finally {
      await load.close();
      await closeApp();
    }

    const results = entries.map((entry) => {
      const rps = entry.rounds.map((x) => x.rps);
      return {
        variant: entry.variant.key,
        label: entry.variant.label,
        rps: round(median(rps)),
        rpsMin: round(min(rps)),
        rpsMax: round(max(rps)),
        p50Ms: round(median(entry.rounds.map((x) => x.p50Ms)), 3),
        p99Ms: round(median(entry.rounds.map((x) => x.p99Ms)), 3),
        checked: entry.checked,
        mismatches: entry.mismatches,
        non200: entry.non200,
        errors: entry.errors,
        firstProblem: entry.firstProblem,
        rounds: entry.rounds,
      };
    });
    const [a, b] = results;
    // Ratio of the medians, and the median of the per-round ratios (rounds ran back to back).
    const ratio = round(b.rps / a.rps, 3);
    const roundRatios = a.rounds.map((ra, i) => round(b.rounds[i].rps / ra.rps, 3));
    for (const r of results) r.ratioBToA = r.variant === 'plain' ? ratio : 1;

    for (const r of results) {
      if (r.checked === 0) failures.push(`${r.label}: no response was checked`);
      if (r.mismatches > 0)
        failures.push(
          `${r.label}: ${r.mismatches} responses held another tenant's or another id's row (first: ${r.firstProblem})`,
        );
      if (r.non200 > 0)
        failures.push(`${r.label}: ${r.non200} responses were not 200 (first: ${r.firstProblem})`);
      if (r.errors > 0) failures.push(`${r.label}: ${r.errors} connection errors or timeouts`);
    }
    notes.push(
      `http: plain twin / tenant-routed = ${ratio.toFixed(2)} (per round: ${roundRatios.map((x) => x.toFixed(2)).join(', ')}); ${fmtInt(a.checked + b.checked)} response bodies checked, all of the right tenant and id`,
    );

    return {
      failures,
      notes,
      data: {
        config: {
          ...config,
          poolMax: POOL_MAX,
          connections: CONNECTIONS,
          rowsPerTenant: ROWS_PER_TENANT,
          loadGenerator: 'autocannon 9, child process, pipelining 1',
        },
        ratioPlainToTenant: ratio,
        roundRatios,
        results,
      },
      tables: [
        {
          title: `HTTP end to end: ${config.tenants} tenants, autocannon ${CONNECTIONS} connections, pool of ${POOL_MAX}, median of ${config.rounds} rounds × ${config.roundSec} s`,
          columns: [
            { key: 'label', label: 'endpoint', align: 'left' },
            { key: 'rps', label: 'req/s', format: fmtInt },
            {
              key: 'ratioBToA',
              label: 'B/A',
              format: (v, r) => (r.variant === 'plain' ? fmtFixed(2)(v) : ''),
            },
            { key: 'p50Ms', label: 'p50 ms', format: fmtFixed(2) },
            { key: 'p99Ms', label: 'p99 ms', format: fmtFixed(2) },
            {
              key: 'range',
              label: 'req/s range (rounds)',
              format: (_, r) => `${fmtInt(r.rpsMin)}–${fmtInt(r.rpsMax)}`,
            },
            { key: 'checked', label: 'bodies checked', format: fmtInt },
            { key: 'mismatches', label: 'wrong rows' },
            { key: 'non200', label: 'non-200' },
          ],
          rows: results,
        },
      ],
      chart: {
        title: `HTTP end to end, ${CONNECTIONS} connections (requests/s, higher is better)`,
        unit: 'requests/s',
        series: results.map((r) => ({
          key: r.variant,
          label: VARIANTS[r.variant].label,
          color: VARIANTS[r.variant].color,
        })),
        groups: [
          {
            label: `${config.tenants} tenants, pool of ${POOL_MAX}`,
            values: Object.fromEntries(results.map((r) => [r.variant, r.rps])),
          },
        ],
      },
    };
  },
};
