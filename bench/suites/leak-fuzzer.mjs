// The leak fuzzer (#26) at volume: 1,000,000 operations (quick: 10,000) over 50 tenants (quick: 20)
// across every channel there is (HTTP through the interceptor, TenantService.run, TenantAdmission,
// long-lived sessions, and each integration's channel once it exists), while tenants are
// suspended, resumed, dropped and re-created mid-flight on either of two instances. About half
// the tenants are in the pooled tier, the rest in the schema tier. The same
// harness as the short run in `npm test` (test/support/leak-fuzzer/), here against dist/.
// Correctness only: every counter but the totals must be 0, else the run fails, naming the seed.
//   FUZZ_SEED=<n>              replay a seed (printed at the start and in every failure)
//   BENCH_FUZZ_OPERATIONS=<n>  a full run's operation count (default 1,000,000)
import { fuzzChannels } from '../../test/support/leak-fuzzer/integrations.mjs';
import { fuzzSeed, runLeakFuzzer } from '../../test/support/leak-fuzzer/fuzzer.mjs';
import { hasServer, startRedis } from '../../test/support/brokers.mjs';
import { round } from '../lib/stats.mjs';
import { fmtFixed, fmtInt } from '../lib/table.mjs';

const FULL = {
  operations: Number(process.env.BENCH_FUZZ_OPERATIONS ?? 1_000_000),
  tenants: 50,
  concurrency: 32,
  lifecycleEvery: 200,
};
const QUICK = { operations: 10_000, tenants: 20, concurrency: 32, lifecycleEvery: 50 };

export default {
  name: 'leak-fuzzer',
  description:
    '1,000,000 random operations over 50 tenants across every channel, tenants suspended and dropped mid-flight: 0 cross-tenant accesses',

  async run(ctx) {
    const config = ctx.quick ? QUICK : FULL;
    const lib = await import('../../dist/index.js');
    const database = await ctx.createDatabase('bench_fuzz');
    // For the queues channel; skipped without redis-server.
    const redis = hasServer('redis') ? await startRedis() : undefined;
    if (redis) ctx.defer(() => redis.stop());
    const seed = fuzzSeed();
    ctx.log(`FUZZ_SEED=${seed}: ${fmtInt(config.operations)} operations`);
    const report = await runLeakFuzzer({
      lib,
      url: database.url,
      seed,
      ...config,
      channels: await fuzzChannels({ lib, source: 'dist', servers: { redis } }),
      log: ctx.log,
    });
    const notes = [
      `leak-fuzzer: ${fmtInt(report.operations)} operations in ${report.seconds.toFixed(1)} s = ${fmtInt(report.opsPerSecond)} ops/s, ${fmtInt(report.cpuMicrosPerOp)} µs of this process's CPU per operation (seed ${seed}); ` +
        `${report.counters.crossTenantWrites + report.counters.crossTenantReads} cross-tenant accesses, ` +
        `${report.counters.ranAfterBound} run after maxStalenessMs, ${report.counters.untypedRefusals} untyped refusals`,
    ];
    if (ctx.quick)
      notes.push(
        `quick mode: ${fmtInt(config.operations)} operations (full: ${fmtInt(FULL.operations)})`,
      );
    for (const s of report.skipped) notes.push(`channel ${s.name} skipped: ${s.reason}`);
    if (report.loggedErrors.count)
      notes.push(
        `the apps logged ${fmtInt(report.loggedErrors.count)} errors` +
          (report.loggedErrors.samples.length
            ? `, e.g. ${report.loggedErrors.samples[0]}`
            : ', all typed tenant refusals'),
      );
    const rows = Object.entries(report.byChannel).map(([channel, stats]) => ({
      channel,
      ...stats,
    }));
    return {
      failures: report.failures,
      notes,
      data: {
        config,
        ...report,
        seconds: round(report.seconds, 1),
        opsPerSecond: round(report.opsPerSecond),
        cpuMicrosPerOp: round(report.cpuMicrosPerOp),
      },
      tables: [
        {
          title: `Leak fuzzer: ${fmtInt(report.operations)} operations, ${report.tenants} tenants, ${report.concurrency} in flight, maxStalenessMs ${report.maxStalenessMs}, seed ${seed}: ${fmtInt(report.opsPerSecond)} ops/s`,
          columns: [
            { key: 'channel', label: 'channel', align: 'left' },
            { key: 'served', label: 'served', format: fmtInt },
            { key: 'refused', label: 'refused (typed)', format: fmtInt },
            { key: 'pooled', label: 'of which pooled', format: fmtInt },
          ],
          rows,
        },
        {
          title: 'Leak fuzzer counters (all but the totals must be 0) and lifecycle changes',
          columns: [
            { key: 'name', label: 'counter', align: 'left' },
            {
              key: 'value',
              label: 'count',
              format: (v) => (Number.isInteger(v) ? fmtInt(v) : fmtFixed(1)(v)),
            },
          ],
          rows: [
            ...Object.entries(report.counters).map(([name, value]) => ({ name, value })),
            ...Object.entries(report.lifecycle).map(([name, value]) => ({
              name: `lifecycle ${name}`,
              value,
            })),
            ...Object.entries(report.tiers).flatMap(([tier, { created, wrote }]) => [
              { name: `${tier} tenants created`, value: created },
              { name: `writes to ${tier} tenants`, value: wrote },
            ]),
            { name: 'rows swept at the end', value: report.rowsSwept },
          ],
        },
      ],
    };
  },
};
