// Tenant schemas for the lookup benchmarks: `tenant_0000`, `tenant_0001`, … each holding an
// `items` table of `rows` rows whose `tenant` column names its own schema.
import { quoteIdentifier } from '../../dist/index.js';
import { createPool } from './postgres.mjs';

export const tenantName = (i) => `tenant_${String(i).padStart(4, '0')}`;

/** Creates tenant schemas `from`..`to - 1` (50 per statement batch, two connections). */
export async function createTenants(url, from, to, rows) {
  const pool = createPool({ connectionString: url, max: 2, application_name: 'bench_setup' });
  try {
    const batches = [];
    for (let i = from; i < to; i += 50) {
      const stmts = [];
      for (let j = i; j < Math.min(to, i + 50); j++) {
        const s = quoteIdentifier(tenantName(j));
        stmts.push(
          `CREATE SCHEMA ${s};`,
          `CREATE TABLE ${s}.items (id int PRIMARY KEY, tenant text NOT NULL, payload text NOT NULL);`,
          `INSERT INTO ${s}.items SELECT g, '${tenantName(j)}', repeat(md5(g::text), 3) FROM generate_series(1, ${rows}) g;`,
        );
      }
      batches.push(stmts.join('\n'));
    }
    let next = 0;
    const worker = async () => {
      while (next < batches.length) await pool.query(batches[next++]);
    };
    await Promise.all([worker(), worker()]);
    await pool.query('VACUUM (ANALYZE)');
  } finally {
    await pool.end();
  }
}
