// The variants of the `affinity` suite and what it measures on each: raw pg, and the library's
// own pool and managers booted in a Nest application context with tenant affinity off or on.
// Every lookup returns its row and the backend pid that served it; the row is checked to be the
// asked tenant's and id, and the pid tells which schemas each backend has served.
import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  DatabaseModule,
  getPoolToken,
  getSchemaDbToken,
  quoteIdentifier,
  TenantContext,
} from '../../dist/index.js';
import { DatabaseMonitor } from '../../dist/observability/index.js';
import { serverCpuMicros } from './backend-cpu.mjs';
import { memoryByConnection } from './backend-memory.mjs';
import { runClosedLoop } from './load.mjs';
import { createPool } from './postgres.mjs';
import { createRandom } from './random.mjs';
import { median, round } from './stats.mjs';

/** `true` when the built library has tenant affinity (`DatabaseMonitor.getAffinityStats`). */
export const AFFINITY_BUILT = typeof DatabaseMonitor.prototype.getAffinityStats === 'function';

const TEMPLATE_SQL =
  'SELECT id, tenant, payload, pg_backend_pid() AS pid FROM {{tables.items}} WHERE id = $1';
const qualifiedSql = (schema) =>
  `SELECT id, tenant, payload, pg_backend_pid() AS pid FROM ${quoteIdentifier(schema)}."items" WHERE id = $1`;

/** The counters of `getAffinityStats()` that only grow (reported as differences over a phase). */
const AFFINITY_COUNTERS = ['checkouts', 'preferred', 'warm', 'stolen', 'handoffs', 'recycled'];

export const VARIANTS = {
  raw: {
    key: 'raw',
    label: 'raw pg, unnamed (pool.query, hand-qualified SQL)',
    short: 'raw pg',
    color: '#9c9c9c',
  },
  off: {
    key: 'off',
    short: 'affinity off (as before)',
    label: 'library, affinity off (pool: { affinity: false, backendMemory: false })',
    color: '#e15759',
    pool: { affinity: false, backendMemory: false },
  },
  on: {
    key: 'on',
    label: 'library, defaults (affinity on)',
    short: 'affinity on (defaults)',
    color: '#4e79a7',
    pool: {},
  },
};

/** raw pg: one pool of `poolMax`, the SQL of each tenant built once. */
function openRaw(url, tenants, poolMax) {
  const pool = createPool({
    connectionString: url,
    max: poolMax,
    idleTimeoutMillis: 0,
    application_name: 'bench_aff_raw',
  });
  const sql = new Map(tenants.map((t) => [t, qualifiedSql(t)]));
  return {
    pool,
    lookup: async (tenant, id) => (await pool.query(sql.get(tenant), [id])).rows[0],
    stats: () => ({}),
    close: () => pool.end(),
  };
}

/**
 * The library: `DatabaseModule.forRoot` with tenancy (so the per-tenant fair share is on, as in
 * an app), the default manager's `withSchema(tenant)` built once per tenant, and each lookup run
 * in the tenant's context, as the tenant interceptor does for a request. No registry rows: the
 * managers of a schema need none.
 */
async function openLibrary(url, tenants, poolMax, variant) {
  class AffinityBenchModule {}
  Module({
    imports: [
      DatabaseModule.forRoot({
        connection: url,
        pool: {
          max: poolMax,
          idleTimeoutMs: 0,
          acquireTimeoutMs: 60_000,
          applicationName: `bench_aff_${variant.key}`,
          ...(AFFINITY_BUILT ? variant.pool : {}),
        },
        migrateOnStartup: false,
        tenancy: {
          registrySchema: `bench_affinity_${variant.key}`,
          interceptor: false,
          maxStalenessMs: 600_000,
        },
      }),
    ],
  })(AffinityBenchModule);
  const app = await NestFactory.createApplicationContext(AffinityBenchModule, {
    logger: ['error', 'warn'],
  });
  const pool = app.get(getPoolToken());
  const root = app.get(getSchemaDbToken());
  const context = app.get(TenantContext);
  const monitor = app.get(DatabaseMonitor);
  const scopes = new Map(tenants.map((t) => [t, { tenantId: t, db: root.withSchema(t) }]));
  return {
    pool,
    monitor,
    lookup: (tenant, id) => {
      const scope = scopes.get(tenant);
      return context.run(scope, () => scope.db.fetchOne(TEMPLATE_SQL, [id]));
    },
    stats: () => ({
      statements: monitor.getStatementStats(),
      affinity: AFFINITY_BUILT ? monitor.getAffinityStats() : undefined,
    }),
    close: () => app.close(),
  };
}

/** Opens `variant` and returns its entry: the instance, the pids it saw, its failures. */
export async function openEntry(variant, { url, tenants, poolMax, rowsPerTenant }) {
  const instance =
    variant.key === 'raw'
      ? openRaw(url, tenants, poolMax)
      : await openLibrary(url, tenants, poolMax, variant);
  const entry = {
    variant,
    instance,
    /** backend pid → the schemas it served */
    served: new Map(),
    mismatches: 0,
    errors: 0,
    firstError: undefined,
    /** One checked lookup of `tenant`: `true` when the row is the tenant's and the id asked. */
    async lookup(tenant, random) {
      const id = 1 + random.int(rowsPerTenant);
      const row = await instance.lookup(tenant, id);
      if (row == null || row.tenant !== tenant || row.id !== id) return false;
      let schemas = entry.served.get(row.pid);
      if (!schemas) entry.served.set(row.pid, (schemas = new Set()));
      schemas.add(tenant);
      return true;
    },
    tally(result) {
      entry.mismatches += result.mismatches;
      entry.errors += result.errors;
      entry.firstError ??= result.firstError;
    },
  };
  return entry;
}

/**
 * `passes` passes over `tenants`, each in a new shuffled order, by `concurrency` callers pulling
 * the next tenant from the one list: every tenant is asked `passes` times.
 */
export async function sweep(entry, tenants, { passes, concurrency, seed }) {
  const random = createRandom(seed);
  const order = new Int32Array(tenants.length * passes);
  for (let p = 0; p < passes; p++) {
    const base = p * tenants.length;
    for (let i = 0; i < tenants.length; i++) order[base + i] = i;
    for (let i = tenants.length - 1; i > 0; i--) {
      const j = random.int(i + 1);
      const t = order[base + i];
      order[base + i] = order[base + j];
      order[base + j] = t;
    }
  }
  let next = 0;
  const result = { operations: order.length, mismatches: 0, errors: 0, firstError: undefined };
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      const ids = createRandom(seed + 1 + w);
      while (next < order.length) {
        const tenant = tenants[order[next++]];
        try {
          if (!(await entry.lookup(tenant, ids))) result.mismatches++;
        } catch (err) {
          result.errors++;
          result.firstError ??= err;
        }
      }
    }),
  );
  result.elapsedMs = performance.now() - t0;
  entry.tally(result);
  return result;
}

/**
 * One measured round of `runClosedLoop(loop)` on `entry`: queries/s, the server's and this
 * process's CPU per query (server: the backends that served the entry so far, read from /proc;
 * `undefined` when PostgreSQL is not local), and {@link statsDelta} over the round.
 */
export async function measureRound(entry, loop) {
  const pids = [...entry.served.keys()];
  const before = entry.instance.stats();
  const cpuBefore = serverCpuMicros(pids);
  const res = await runClosedLoop(loop);
  const serverCpu = serverCpuMicros(pids) - cpuBefore;
  entry.tally(res);
  return {
    res,
    qps: round(res.operations / (res.elapsedMs / 1000)),
    ...(cpuBefore > 0 ? { serverCpuUsPerQuery: round(serverCpu / res.operations, 1) } : {}),
    clientCpuUsPerQuery: round((res.cpu.user + res.cpu.system) / res.operations, 1),
    ...statsDelta(before, entry.instance.stats()),
  };
}

/** Hit rate of the managed statements and the affinity counters between two `stats()`. */
export function statsDelta(before, after) {
  const out = {};
  if (after.statements) {
    const hits = after.statements.hits - before.statements.hits;
    const misses = after.statements.misses - before.statements.misses;
    out.hitRate = hits + misses ? round(hits / (hits + misses), 4) : 0;
    out.statementMode = after.statements.mode;
  }
  if (after.affinity) {
    const delta = {};
    for (const key of AFFINITY_COUNTERS) {
      if (typeof after.affinity[key] === 'number')
        delta[key] = after.affinity[key] - (before.affinity?.[key] ?? 0);
    }
    out.affinity = delta;
  }
  return out;
}

/**
 * Server memory of each of the pool's connections (read on it) and the distinct schemas it has
 * served (from the pids the lookups returned): means and maxima, and one entry per connection.
 */
export async function readMemory(entry, poolMax) {
  const rows = await memoryByConnection(entry.instance.pool, poolMax);
  const perConnection = rows.map((r) => ({ ...r, schemas: entry.served.get(r.pid)?.size ?? 0 }));
  const mean = (key) => round(perConnection.reduce((s, r) => s + r[key], 0) / rows.length, 1);
  const most = (key) => Math.max(...perConnection.map((r) => r[key]));
  return {
    totalMiB: mean('totalMiB'),
    maxMiB: most('totalMiB'),
    medianMiB: median(perConnection.map((r) => r.totalMiB)),
    relcacheMiB: mean('relcacheMiB'),
    plansMiB: mean('plansMiB'),
    statements: Math.round(mean('statements')),
    schemasPerConn: Math.round(mean('schemas')),
    schemasPerConnMax: most('schemas'),
    perConnection,
  };
}
