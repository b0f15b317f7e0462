#!/usr/bin/env node
// A quick, standalone look at tenant affinity (pool.affinity) on the built library: uniform
// lookups over many tenant schemas from concurrent callers, affinity on and off in alternating
// rounds on fresh pools. Prints how checkouts were served (preferred / warm / stolen), the
// distinct schemas per connection, the managed-statement hit rate, the server memory per
// connection after the round, and throughput. The benchmark suites (`npm run bench`) are the
// reference; this is for a short check while working on the pool.
//   npm run build && node bench/affinity-mix.mjs [--tenants 2000] [--max 10] [--callers 32] [--ms 5000] [--rounds 2]
import { parseArgs } from 'node:util';
import { SchemaDb } from '../dist/index.js';
import { createPool } from '../dist/connection/create-pool.js';
import { affinityStats } from '../dist/connection/pool-affinity.js';
import { memoryPerConnection } from './lib/backend-memory.mjs';
import { runClosedLoop } from './lib/load.mjs';
import { createDatabase, openServer } from './lib/postgres.mjs';
import { createTenants, tenantName } from './lib/tenant-schemas.mjs';

const { values } = parseArgs({
  options: {
    tenants: { type: 'string', default: '2000' },
    max: { type: 'string', default: '10' },
    callers: { type: 'string', default: '32' },
    ms: { type: 'string', default: '5000' },
    rounds: { type: 'string', default: '2' },
  },
});
const [tenants, max, callers, roundMs, rounds] = [
  values.tenants,
  values.max,
  values.callers,
  values.ms,
  values.rounds,
].map(Number);

const log = (line) => process.stderr.write(`${line}\n`);
const server = await openServer(log);
const database = await createDatabase(server.url, 'bench_affinity');
try {
  log(`creating ${tenants} tenant schemas…`);
  await createTenants(database.url, 0, tenants, 10);
  const names = Array.from({ length: tenants }, (_, i) => tenantName(i));
  for (let round = 0; round < rounds; round++) {
    for (const affinity of [true, false]) {
      const pool = createPool({ connection: database.url, pool: { max, affinity } });
      const base = SchemaDb.create(pool, null, { preparedStatements: true });
      const dbs = names.map((name) => base.withSchema(name));
      try {
        const result = await runClosedLoop({
          concurrency: callers,
          durationMs: roundMs,
          seed: 7 + round,
          record: false,
          operation: async (random) => {
            const i = random.int(tenants);
            const row = await dbs[i].fetchOne(
              'SELECT id, tenant FROM {{tables.items}} WHERE id = $1',
              [1 + random.int(10)],
            );
            return row?.tenant === names[i];
          },
        });
        const stats = affinityStats(pool);
        const statements = base.statementStats;
        const memory = await memoryPerConnection(pool, pool.totalCount);
        const share = (n) => (stats ? `${((100 * n) / stats.checkouts).toFixed(1)}%` : '-');
        const perConnection = stats?.schemasPerConnection ?? [];
        console.log(
          JSON.stringify({
            round,
            affinity,
            opsPerSec: Math.round((result.operations / result.elapsedMs) * 1000),
            errors: result.errors,
            mismatches: result.mismatches,
            preferred: stats && share(stats.preferred),
            warm: stats && share(stats.warm),
            stolen: stats && share(stats.stolen),
            handoffs: stats?.handoffs,
            schemasPerConnection: perConnection.length
              ? `${Math.min(...perConnection)}–${Math.max(...perConnection)}`
              : undefined,
            statementHitRate: statements && Math.round(statements.hitRate * 1000) / 10,
            relcacheMiB: memory.relcacheMiB,
            totalMiB: memory.totalMiB,
          }),
        );
      } finally {
        await pool.end();
      }
    }
  }
} finally {
  await database.drop();
  await server.stop();
}
