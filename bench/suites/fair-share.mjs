// Fair share of the pool: 10 quiet tenants, one closed-loop caller each, run a fast query on a
// pool of 10 connections while one noisy tenant keeps NOISY concurrent slow queries
// (pg_sleep) in flight. Three scenarios in one run, each for the same duration:
//   (Q) the quiet tenants alone (the baseline);
//   (F) beside the noisy tenant, with the per-tenant share (default: half of pool.max = 5);
//   (N) beside the noisy tenant, without a share (tenancy.maxConnectionsPerTenant = pool.max).
// Reported: the quiet tenants' p50/p99 latency and their ratio to (Q), and the noisy tenant's
// throughput. Correctness: every quiet query returns its own tenant's value, no query fails.
import { SchemaDb, TenantContext } from '../../dist/index.js';
import { TenantFairShare } from '../../dist/connection/tenant-fair-share.js';
import { runClosedLoop } from '../lib/load.mjs';
import { createPool } from '../lib/postgres.mjs';
import { percentile, round } from '../lib/stats.mjs';
import { fmtFixed, fmtInt } from '../lib/table.mjs';

const POOL_MAX = 10;
const SHARE = Math.ceil(POOL_MAX / 2);
const QUIET_TENANTS = 10;
const NOISY = 200;
const NOISY_SLEEP_S = 0.05;
const FULL = { durationMs: 10_000, warmupMs: 1_000 };
const QUICK = { durationMs: 2_000, warmupMs: 300 };

const LABELS = {
  Q: '(Q) quiet tenants alone',
  F: `(F) + noisy tenant, share ${SHARE} of ${POOL_MAX} (default)`,
  N: '(N) + noisy tenant, no share',
};
const COLORS = { Q: '#4e79a7', F: '#f28e2b', N: '#e15759' };

export default {
  name: 'fair-share',
  description: `quiet tenants' latency beside a noisy tenant with ${NOISY} concurrent slow queries, with and without the per-tenant share`,
  async run(ctx) {
    const config = ctx.quick ? QUICK : FULL;
    const failures = [];
    const notes = [];
    const database = await ctx.createDatabase('bench_fair');
    const context = new TenantContext();

    async function scenario(key, noisy, share) {
      const pool = createPool({
        connectionString: database.url,
        max: POOL_MAX,
        idleTimeoutMillis: 0,
        connectionTimeoutMillis: 60_000,
        application_name: `bench_fair_${key}`,
      });
      const fairShare = share
        ? new TenantFairShare({
            maxPerTenant: SHARE,
            acquireTimeoutMs: 60_000,
            poolMax: POOL_MAX,
            tenantOf: () => context.current?.tenantId,
          })
        : undefined;
      const env = { pool, ...(fairShare ? { fairShare } : {}) };
      const quiet = Array.from({ length: QUIET_TENANTS }, (_, i) => ({
        id: `quiet_${i}`,
        db: SchemaDb.create(env, `tenant_quiet_${i}`),
      }));
      const loud = { tenantId: 'noisy', db: SchemaDb.create(env, 'tenant_noisy') };
      try {
        // Open every connection first, so no scenario pays for connecting.
        await Promise.all(
          Array.from({ length: POOL_MAX }, () => pool.query('SELECT pg_sleep(0.01)')),
        );
        let stop = false;
        let noisyDone = 0;
        let noisyErrors = 0;
        const noisyWorkers = noisy
          ? Array.from({ length: NOISY }, () =>
              context.run(loud, async () => {
                while (!stop) {
                  try {
                    await loud.db.execute('SELECT pg_sleep($1)', [NOISY_SLEEP_S]);
                    noisyDone++;
                  } catch {
                    noisyErrors++;
                  }
                }
              }),
            )
          : [];
        const quietOnce = (durationMs, record) =>
          runClosedLoop({
            concurrency: QUIET_TENANTS,
            durationMs,
            seed: 7,
            record,
            operation: async (random) => {
              const tenant = quiet[random.int(QUIET_TENANTS)];
              return context.run({ tenantId: tenant.id, db: tenant.db }, async () => {
                const v = await tenant.db.fetchValue('SELECT $1::text', [tenant.id]);
                return v === tenant.id;
              });
            },
          });
        await quietOnce(config.warmupMs, false);
        const noisyBefore = noisyDone;
        const result = await quietOnce(config.durationMs, true);
        const noisyCount = noisyDone - noisyBefore;
        stop = true;
        await Promise.all(noisyWorkers);
        if (result.mismatches) failures.push(`${LABELS[key]}: ${result.mismatches} wrong values`);
        if (result.errors) failures.push(`${LABELS[key]}: ${result.errors} quiet queries failed: ${result.firstError?.message}`);
        if (noisyErrors) failures.push(`${LABELS[key]}: ${noisyErrors} noisy queries failed`);
        const sorted = result.latencies.sorted();
        return {
          variant: key,
          label: LABELS[key],
          quietQps: Math.round(result.operations / (result.elapsedMs / 1000)),
          p50: round(percentile(sorted, 50)),
          p99: round(percentile(sorted, 99)),
          noisyQps: noisy ? Math.round(noisyCount / (result.elapsedMs / 1000)) : undefined,
        };
      } finally {
        await pool.end();
      }
    }

    const results = [];
    for (const [key, noisy, share] of [
      ['Q', false, true],
      ['F', true, true],
      ['N', true, false],
    ]) {
      ctx.log(`scenario ${LABELS[key]}`);
      results.push(await scenario(key, noisy, share));
    }
    const base = results[0];
    for (const r of results) {
      r.p99Ratio = r.p99 / base.p99;
      r.p50Ratio = r.p50 / base.p50;
    }
    const [, f, n] = results;
    notes.push(
      `fair-share: quiet tenants' p99 beside a noisy tenant (${NOISY} concurrent ${NOISY_SLEEP_S * 1000} ms queries) is ${f.p99Ratio.toFixed(2)}x their p99 alone with the share, ${n.p99Ratio.toFixed(2)}x without it`,
    );
    return {
      failures,
      notes,
      data: { config: { ...config, poolMax: POOL_MAX, share: SHARE, noisy: NOISY, noisySleepS: NOISY_SLEEP_S }, results },
      tables: [
        {
          title: `Fair share: ${QUIET_TENANTS} quiet tenants (1 caller each) beside 1 noisy tenant (${NOISY} concurrent pg_sleep(${NOISY_SLEEP_S})), pool.max ${POOL_MAX}, ${config.durationMs / 1000} s each, same run`,
          columns: [
            { key: 'label', label: 'scenario', align: 'left' },
            { key: 'quietQps', label: 'quiet q/s', format: fmtInt },
            { key: 'p50', label: 'quiet p50 ms', format: fmtFixed(2) },
            { key: 'p99', label: 'quiet p99 ms', format: fmtFixed(2) },
            { key: 'p99Ratio', label: 'p99 / (Q)', format: fmtFixed(2) },
            { key: 'noisyQps', label: 'noisy q/s', format: (v) => (v === undefined ? '' : fmtInt(v)) },
          ],
          rows: results,
        },
      ],
      chart: {
        title: "Quiet tenants' p99 latency beside a noisy tenant (ms, lower is better)",
        unit: 'p99 ms',
        series: results.map((r) => ({ key: r.variant, label: LABELS[r.variant], color: COLORS[r.variant] })),
        groups: [{ label: `${QUIET_TENANTS} quiet + 1 noisy`, values: Object.fromEntries(results.map((r) => [r.variant, r.p99])) }],
      },
    };
  },
};
