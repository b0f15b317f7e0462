// The leak fuzzer's short run (#26): a few thousand operations over many tenants across every
// channel there is, with tenants suspended, resumed, dropped and re-created mid-flight. Replay a
// failure with FUZZ_SEED=<seed> (and FUZZ_OPERATIONS=<n> for a longer run); the bench suite
// `leak-fuzzer` runs 1,000,000. FUZZ_REPORT=1 prints a passing run's report. What it checks:
// docs/production.md (the leak fuzzer).
import * as lib from '../../../../lib/index.js';
import { useTestDatabase } from '../../../support/database.js';
import { startRedis, type ExternalServer } from '../../../support/external-servers.js';
import { fuzzSeed, runLeakFuzzer } from '../../../support/leak-fuzzer/fuzzer.mjs';
import { fuzzChannels } from '../../../support/leak-fuzzer/integrations.mjs';

const OPERATIONS = Number(process.env.FUZZ_OPERATIONS ?? 3_000);

describe('leak fuzzer', () => {
  const database = useTestDatabase();
  // The queues channel's broker. Without redis-server the channel is skipped (and says so),
  // except under CI, which must run every channel.
  let redis: ExternalServer | undefined;
  beforeAll(async () => {
    try {
      redis = await startRedis();
    } catch (err) {
      if (process.env.CI) throw err;
    }
  });
  afterAll(() => redis?.stop());

  it(`keeps every tenant's work in its tenant for ${OPERATIONS} random operations`, async () => {
    const seed = fuzzSeed();
    const report = await runLeakFuzzer({
      lib,
      url: database.current.url,
      seed,
      operations: OPERATIONS,
      channels: await fuzzChannels({ lib, source: 'lib', servers: { redis } }),
    });
    for (const { name, reason } of report.skipped)
      console.warn(`Leak fuzzer: channel ${name} skipped: ${reason}.`);
    if (report.failures.length > 0) {
      throw new Error(
        `Leak fuzzer failed; replay with FUZZ_SEED=${seed} FUZZ_OPERATIONS=${OPERATIONS}:\n` +
          `${JSON.stringify(report.counters)}\n${report.failures.join('\n')}`,
      );
    }
    expect(report.counters).toMatchObject({
      operations: OPERATIONS,
      crossTenantWrites: 0,
      crossTenantReads: 0,
      blindReads: 0,
      ranWithoutTenant: 0,
      ranAfterBound: 0,
      untypedRefusals: 0,
      unexplainedRefusals: 0,
      servedWithoutTenant: 0,
      servedButNotRun: 0,
      unseenWrites: 0,
    });
    // The run did what it claims: work on every channel, for pooled tenants too (the unscoped
    // channel names none), refusals of each kind, tenants changed, tenants of both tiers.
    if (process.env.FUZZ_REPORT) console.log(JSON.stringify({ ...report, failures: undefined }));
    for (const [name, stats] of Object.entries(report.byChannel))
      expect({ name, used: stats.served + stats.refused > 0, pooled: stats.pooled > 0 }).toEqual({
        name,
        used: true,
        pooled: name !== 'unscoped',
      });
    expect(report.tiers.schema.wrote).toBeGreaterThan(0);
    expect(report.tiers.pooled.wrote).toBeGreaterThan(0);
    expect(report.refusals).toMatchObject({
      TenantNotFoundError: expect.any(Number),
      TenantRequiredError: expect.any(Number),
      InvalidTenantIdError: expect.any(Number),
      TenantContextMissingError: expect.any(Number),
    });
    expect(report.lifecycle.suspend + report.lifecycle.drop).toBeGreaterThan(0);
    expect(report.rowsSwept).toBeGreaterThan(0);
  }, 120_000);
});
