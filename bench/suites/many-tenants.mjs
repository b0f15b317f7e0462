// Start-up with many registered tenants: time to ready and memory of an app whose registry holds
// 10,000 tenants (quick: 1,000), against the same app with none. Each start is a fresh child
// process (bench/fixtures/many-tenants-app.mjs, node --expose-gc) so its memory is its own: it
// boots DatabaseModule with tenancy (migrateOnStartup: false), reports the time from
// createApplicationContext() to init() done, RSS and heap after a full GC, and the registry's size.
// Rounds rotate the order of the tenant counts. The registries are filled with one
// INSERT … unnest (status 'active', migrated_version 0): start-up does not touch tenant schemas.
import { startManyTenantsApp } from '../lib/many-tenants-child.mjs';
import { withClient } from '../lib/postgres.mjs';
import { max, median, min, round } from '../lib/stats.mjs';
import { fmtFixed, fmtInt } from '../lib/table.mjs';

const FULL = { counts: [0, 1000, 10000], rounds: 5 };
const QUICK = { counts: [0, 1000], rounds: 3 };

const registryOf = (n) => `bench_reg_${n}`;
const tenantId = (i) => `t${String(i).padStart(5, '0')}`;
const MiB = 2 ** 20;

/** One start of the fixture app; resolves to its RESULT object plus the parent's wall time. */
function startApp(url, registrySchema, probeTenant) {
  return startManyTenantsApp(
    url,
    registrySchema,
    probeTenant ? { BENCH_PROBE_TENANT: probeTenant } : {},
  );
}

export default {
  name: 'many-tenants',
  description:
    'Start-up with 10,000 registered tenants vs none: time to ready and resident memory (child processes)',

  async run(ctx) {
    const config = ctx.quick ? QUICK : FULL;
    const notes = [];
    if (ctx.quick)
      notes.push(
        `quick mode: ${config.counts.join(' and ')} tenants, ${config.rounds} rounds (full: ${FULL.counts.join(', ')} tenants, ${FULL.rounds} rounds)`,
      );
    const database = await ctx.createDatabase('bench_many');
    const url = database.url;
    const failures = [];

    // A first start per registry creates its table (the library's own DDL); then fill it.
    for (const n of config.counts) await startApp(url, registryOf(n));
    const t0 = performance.now();
    await withClient(url, async (client) => {
      for (const n of config.counts) {
        if (n === 0) continue;
        const ids = Array.from({ length: n }, (_, i) => tenantId(i));
        await client.query(
          `INSERT INTO ${registryOf(n)}.tenants (id, schema_name, status, migrated_version)
           SELECT id, 'tenant_' || id, 'active', 0 FROM unnest($1::text[]) AS id`,
          [ids],
        );
      }
      await client.query('VACUUM (ANALYZE)');
    });
    ctx.log(
      `registries of ${config.counts.join(', ')} tenants filled (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );

    // Warm-up: one unmeasured start per count (page cache, catalog caches).
    for (const n of config.counts) await startApp(url, registryOf(n));

    const samples = new Map(config.counts.map((n) => [n, []]));
    for (let r = 0; r < config.rounds; r++) {
      const order = config.counts.map((_, i) => config.counts[(i + r) % config.counts.length]);
      for (const n of order) {
        const probe = n > 0 ? tenantId(n - 1) : undefined;
        const res = await startApp(url, registryOf(n), probe);
        samples.get(n).push(res);
        ctx.log(
          `  round ${r + 1}/${config.rounds} ${fmtInt(n).padStart(6)} tenants: ready in ${res.readyMs.toFixed(0)} ms (${res.sinceProcessStartMs.toFixed(0)} ms since process start), RSS ${(res.rss / MiB).toFixed(1)} MiB, heap ${(res.heapUsed / MiB).toFixed(1)} MiB, registry.size ${res.size}`,
        );
        if (res.size !== n)
          failures.push(`${n} tenants registered: the started app's registry.size is ${res.size}`);
        if (!res.synced)
          failures.push(
            `${n} tenants: the registry was not synced (listener not connected) once ready`,
          );
        if (probe && !res.probeFound)
          failures.push(`${n} tenants: tenant ${probe} was not found once ready`);
      }
    }

    const base = samples.get(config.counts[0]);
    const baseReady = median(base.map((s) => s.readyMs));
    const baseRss = median(base.map((s) => s.rss));
    const baseHeap = median(base.map((s) => s.heapUsed));
    const results = config.counts.map((n) => {
      const s = samples.get(n);
      const ready = s.map((x) => x.readyMs);
      const rss = median(s.map((x) => x.rss));
      const heap = median(s.map((x) => x.heapUsed));
      return {
        tenants: n,
        readyMs: round(median(ready), 1),
        readyMinMs: round(min(ready), 1),
        readyMaxMs: round(max(ready), 1),
        sinceProcessStartMs: round(median(s.map((x) => x.sinceProcessStartMs)), 1),
        readyDeltaMs: round(median(ready) - baseReady, 1),
        rssMiB: round(rss / MiB, 1),
        rssDeltaMiB: round((rss - baseRss) / MiB, 1),
        heapUsedMiB: round(heap / MiB, 1),
        heapDeltaMiB: round((heap - baseHeap) / MiB, 1),
        heapBytesPerTenant: n > 0 ? round((heap - baseHeap) / n) : undefined,
        rssBytesPerTenant: n > 0 ? round((rss - baseRss) / n) : undefined,
        size: s.map((x) => x.size),
        rounds: s.map((x) => ({
          readyMs: round(x.readyMs, 1),
          sinceProcessStartMs: round(x.sinceProcessStartMs, 1),
          wallMs: round(x.wallMs, 1),
          rssMiB: round(x.rss / MiB, 2),
          heapUsedMiB: round(x.heapUsed / MiB, 2),
          size: x.size,
        })),
      };
    });
    const top = results.at(-1);
    notes.push(
      `many-tenants: ${fmtInt(top.tenants)} tenants add ${top.readyDeltaMs.toFixed(0)} ms to start-up, ${top.rssDeltaMiB.toFixed(1)} MiB RSS and ${top.heapDeltaMiB.toFixed(1)} MiB heap (${fmtInt(top.heapBytesPerTenant)} heap bytes per tenant) over an app with none`,
    );

    return {
      failures,
      notes,
      data: { config, results },
      tables: [
        {
          title: `Start-up with many tenants: fresh process each, median of ${config.rounds} starts (memory after a full GC, deltas against 0 tenants)`,
          columns: [
            { key: 'tenants', label: 'tenants', format: fmtInt },
            { key: 'readyMs', label: 'ready ms', format: fmtFixed(0) },
            { key: 'readyDeltaMs', label: 'Δ ready ms', format: fmtFixed(0) },
            {
              key: 'range',
              label: 'ready range ms',
              format: (_, r) => `${r.readyMinMs.toFixed(0)}–${r.readyMaxMs.toFixed(0)}`,
            },
            { key: 'sinceProcessStartMs', label: 'from process start ms', format: fmtFixed(0) },
            { key: 'rssMiB', label: 'RSS MiB', format: fmtFixed(1) },
            { key: 'rssDeltaMiB', label: 'Δ RSS MiB', format: fmtFixed(1) },
            { key: 'heapUsedMiB', label: 'heap MiB', format: fmtFixed(1) },
            { key: 'heapDeltaMiB', label: 'Δ heap MiB', format: fmtFixed(1) },
            {
              key: 'heapBytesPerTenant',
              label: 'heap B/tenant',
              format: (v) => (Number.isFinite(v) ? fmtInt(v) : ''),
            },
            {
              key: 'size',
              label: 'registry.size',
              format: (v) => [...new Set(v)].map(fmtInt).join('/'),
            },
          ],
          rows: results,
        },
      ],
      chart: {
        title:
          'Start-up with many registered tenants (ms to ready and MiB after GC, lower is better)',
        unit: 'ms / MiB',
        series: [
          { key: 'ready', label: 'time to ready (ms)', color: '#4e79a7' },
          { key: 'rss', label: 'RSS after GC (MiB)', color: '#e15759' },
          { key: 'heap', label: 'heap used after GC (MiB)', color: '#59a14f' },
        ],
        groups: results.map((r) => ({
          label: `${fmtInt(r.tenants)} tenants`,
          values: { ready: r.readyMs, rss: r.rssMiB, heap: r.heapUsedMiB },
        })),
      },
    };
  },
};
