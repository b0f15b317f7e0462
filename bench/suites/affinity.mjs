// Tenant affinity at many tenants: raw pg unnamed, the library as it was (affinity and
// memory-aware recycling off) and the library's defaults (affinity on), all with 10
// connections and 32 callers, over N tenant schemas (10,000 in a full run):
//   1. the memory curve: passes over the first 1k, 2.5k, 5k, then all tenants; after each,
//      the server memory of every pooled connection and the schemas it has served;
//   2. uniform traffic: throughput, statement hit rate and affinity counters, rounds
//      alternating the variants' order, then the memory per connection;
//   3. skewed traffic (one tenant sends half of the queries): throughput and the quiet
//      tenants' p99.
// Every row is checked to be the asked tenant's; the memory curve is also drawn on its own
// (bench/results/affinity-memory.svg) for the README.
import { performance } from 'node:perf_hooks';
import {
  AFFINITY_BUILT,
  measureRound,
  openEntry,
  readMemory,
  statsDelta,
  sweep,
  VARIANTS,
} from '../lib/affinity-variants.mjs';
import { canReadMemory } from '../lib/backend-memory.mjs';
import { runClosedLoop } from '../lib/load.mjs';
import { loadAverage, machineInfo } from '../lib/machine.mjs';
import { createPool } from '../lib/postgres.mjs';
import { median, percentile, round, Samples } from '../lib/stats.mjs';
import { fmtInt } from '../lib/table.mjs';
import { createTenants, tenantName } from '../lib/tenant-schemas.mjs';
import {
  affinityTables,
  summarizeRounds,
  targetNotes,
  writeCurve,
} from '../lib/affinity-report.mjs';

const POOL_MAX = 10;
const CONCURRENCY = 32;
const ROWS_PER_TENANT = 10;
const HOT_SHARE = 0.5;

const FULL = {
  tenants: 10_000,
  curve: [1000, 2500, 5000, 10_000],
  passes: 20,
  rounds: 5,
  roundMs: 5000,
  warmupMs: 3000,
};
const QUICK = {
  tenants: 400,
  curve: [100, 200, 400],
  passes: 10,
  rounds: 2,
  roundMs: 1000,
  warmupMs: 300,
};

export default {
  name: 'affinity',
  description:
    'Tenant affinity at many tenants: server memory per connection vs schemas touched, uniform and skewed traffic, affinity off vs on vs raw pg',

  async run(ctx) {
    const config = ctx.quick ? QUICK : FULL;
    const failures = [];
    const notes = [];
    if (ctx.quick)
      notes.push(
        `quick mode: ${config.tenants} tenants, ${config.passes} passes per curve point, ${config.rounds} rounds of ${config.roundMs / 1000} s (full: ${FULL.tenants} tenants, ${FULL.passes} passes, ${FULL.rounds} rounds of ${FULL.roundMs / 1000} s)`,
      );
    if (!AFFINITY_BUILT)
      notes.push(
        'this build has no tenant affinity (no DatabaseMonitor.getAffinityStats): `off` and `on` run the same configuration',
      );
    const database = await ctx.createDatabase('bench_affinity');
    const url = database.url;
    const probe = createPool({ connectionString: url, max: 1 });
    const readable = await canReadMemory(probe).finally(() => probe.end());
    if (!readable) return { failures, skipped: 'pg_backend_memory_contexts needs PostgreSQL 14+' };

    const t0 = performance.now();
    await createTenants(url, 0, config.tenants, ROWS_PER_TENANT);
    const tenants = Array.from({ length: config.tenants }, (_, i) => tenantName(i));
    ctx.log(
      `${config.tenants} tenant schemas ready (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );

    const open = { url, tenants, poolMax: POOL_MAX, rowsPerTenant: ROWS_PER_TENANT };
    const entries = {};
    for (const key of ['raw', 'off', 'on']) {
      entries[key] = await openEntry(VARIANTS[key], open);
      ctx.defer(() => entries[key].instance.close());
    }
    const library = [entries.off, entries.on];
    if (AFFINITY_BUILT) {
      if (entries.off.instance.stats().affinity !== undefined)
        failures.push(
          '`off`: getAffinityStats() is defined although the pool says affinity: false',
        );
      if (entries.on.instance.stats().affinity === undefined)
        failures.push('`on`: getAffinityStats() is undefined with the default options');
    }

    // 1. The memory curve: fresh connections, then passes over more and more tenants.
    const curve = { off: [], on: [] };
    for (const entry of library)
      curve[entry.variant.key].push({ tenants: 0, ...(await readMemory(entry, POOL_MAX)) });
    for (const [s, count] of config.curve.entries()) {
      for (const entry of s % 2 ? [...library].reverse() : library) {
        const before = entry.instance.stats();
        const res = await sweep(entry, tenants.slice(0, count), {
          passes: config.passes,
          concurrency: CONCURRENCY,
          seed: 1e6 + s * 1000,
        });
        const delta = statsDelta(before, entry.instance.stats());
        const memory = await readMemory(entry, POOL_MAX);
        curve[entry.variant.key].push({
          tenants: count,
          sweepQps: round(res.operations / (res.elapsedMs / 1000)),
          ...delta,
          ...memory,
        });
        ctx.log(
          `  curve ${count} tenants × ${config.passes} passes ${entry.variant.key.padEnd(3)}: ${memory.totalMiB} MiB/conn (max ${memory.maxMiB}), ${memory.schemasPerConn} schemas/conn (max ${memory.schemasPerConnMax}), hit rate ${(delta.hitRate * 100).toFixed(1)}%`,
        );
      }
    }

    // 2. Uniform traffic over every tenant, rounds alternating the order.
    const uniform = Object.values(entries);
    const uniformOp = (entry) => (random) =>
      entry.lookup(tenants[random.int(tenants.length)], random);
    for (const entry of uniform) {
      entry.tally(
        await runClosedLoop({
          concurrency: CONCURRENCY,
          durationMs: config.warmupMs,
          seed: 2e6,
          operation: uniformOp(entry),
          record: false,
        }),
      );
      entry.uniformRounds = [];
    }
    for (let r = 0; r < config.rounds; r++) {
      for (const entry of uniform.map((_, i) => uniform[(i + r) % uniform.length])) {
        const { res, ...figures } = await measureRound(entry, {
          concurrency: CONCURRENCY,
          durationMs: config.roundMs,
          seed: 3e6 + r * 1000,
          operation: uniformOp(entry),
        });
        const sorted = res.latencies.sorted();
        entry.uniformRounds.push({
          ...figures,
          p50Ms: round(percentile(sorted, 50), 3),
          p99Ms: round(percentile(sorted, 99), 3),
        });
        const last = entry.uniformRounds.at(-1);
        ctx.log(
          `  uniform round ${r + 1}/${config.rounds} ${entry.variant.key.padEnd(3)} ${fmtInt(last.qps).padStart(7)} q/s${last.hitRate === undefined ? '' : `  hit rate ${(last.hitRate * 100).toFixed(1)}%`}`,
        );
      }
    }
    const uniformRows = [];
    for (const entry of uniform) {
      const rounds = entry.uniformRounds;
      const memory = await readMemory(entry, POOL_MAX);
      uniformRows.push({
        variant: entry.variant.key,
        label: entry.variant.label,
        ...summarizeRounds(rounds),
        p99Ms: round(median(rounds.map((x) => x.p99Ms)), 3),
        ...(entry.variant.key === 'on' && AFFINITY_BUILT
          ? { affinityState: entry.instance.stats().affinity }
          : {}),
        memory,
        rounds,
      });
    }
    const raw = uniformRows.find((x) => x.variant === 'raw').qps;
    const off = uniformRows.find((x) => x.variant === 'off');
    for (const row of uniformRows) {
      row.ratioToRaw = round(row.qps / raw, 3);
      row.ratioToOff = round(row.qps / off.qps, 3);
      row.memoryToOff = round(row.memory.totalMiB / off.memory.totalMiB, 3);
    }

    // 3. Skewed traffic: tenant 0 sends HOT_SHARE of the queries, the rest are uniform over the
    // others; the quiet tenants' latencies are kept apart.
    const hot = tenants[0];
    const quietTenants = tenants.slice(1);
    const skewOp = (entry, sink) => async (random) => {
      const isHot = random.next() < HOT_SHARE;
      const tenant = isHot ? hot : quietTenants[random.int(quietTenants.length)];
      const start = performance.now();
      const ok = await entry.lookup(tenant, random);
      if (sink) isHot ? sink.hot++ : sink.quiet.push(performance.now() - start);
      return ok;
    };
    for (const entry of library) {
      entry.tally(
        await runClosedLoop({
          concurrency: CONCURRENCY,
          durationMs: config.warmupMs,
          seed: 4e6,
          operation: skewOp(entry),
          record: false,
        }),
      );
      entry.skewRounds = [];
    }
    for (let r = 0; r < config.rounds; r++) {
      for (const entry of r % 2 ? [...library].reverse() : library) {
        const sink = { hot: 0, quiet: new Samples() };
        const { res, ...figures } = await measureRound(entry, {
          concurrency: CONCURRENCY,
          durationMs: config.roundMs,
          seed: 5e6 + r * 1000,
          operation: skewOp(entry, sink),
          record: false,
        });
        const quiet = sink.quiet.sorted();
        entry.skewRounds.push({
          ...figures,
          hotShare: round(sink.hot / res.operations, 3),
          quietP50Ms: round(percentile(quiet, 50), 3),
          quietP99Ms: round(percentile(quiet, 99), 3),
        });
        const last = entry.skewRounds.at(-1);
        ctx.log(
          `  skewed round ${r + 1}/${config.rounds} ${entry.variant.key.padEnd(3)} ${fmtInt(last.qps).padStart(7)} q/s  quiet p99 ${last.quietP99Ms} ms`,
        );
      }
    }
    const skewRows = library.map((entry) => {
      const rounds = entry.skewRounds;
      return {
        variant: entry.variant.key,
        label: entry.variant.label,
        ...summarizeRounds(rounds),
        quietP50Ms: round(median(rounds.map((x) => x.quietP50Ms)), 3),
        quietP99Ms: round(median(rounds.map((x) => x.quietP99Ms)), 3),
        rounds,
      };
    });
    const skewOff = skewRows[0];
    for (const row of skewRows) {
      row.ratioToOff = round(row.qps / skewOff.qps, 3);
      row.p99ToOff = round(row.quietP99Ms / skewOff.quietP99Ms, 3);
    }

    for (const entry of Object.values(entries)) {
      if (entry.mismatches)
        failures.push(`${entry.variant.label}: ${entry.mismatches} wrong or missing rows`);
      if (entry.errors)
        failures.push(
          `${entry.variant.label}: ${entry.errors} queries failed (first: ${entry.firstError?.message})`,
        );
    }
    for (const entry of library) {
      const mode = entry.instance.stats().statements?.mode;
      if (mode !== 'on') notes.push(`${entry.variant.key}: managed statements are ${mode}, not on`);
    }

    // The library counts the schemas each connection served; so do the pids the rows came from.
    const state = uniformRows.find((x) => x.variant === 'on').affinityState;
    if (state) {
      const own = uniformRows
        .find((x) => x.variant === 'on')
        .memory.perConnection.map((c) => c.schemas);
      const same =
        JSON.stringify([...state.schemasPerConnection].sort((a, b) => a - b)) ===
        JSON.stringify([...own].sort((a, b) => a - b));
      notes.push(
        `on: getAffinityStats().schemasPerConnection ${same ? 'agrees with' : 'DIFFERS from'} the schemas each backend pid served (${state.schemasPerConnection.join(', ')} vs ${own.join(', ')})`,
      );
    }
    const targets = targetNotes({ curve, uniformRows, skewRows });
    notes.push(...targets.notes);
    const curveFile = await writeCurve({
      data: { config, curve, uniform: uniformRows },
      machine: machineInfo(),
      postgresVersion: ctx.postgresVersion,
      date: new Date().toISOString(),
      quick: ctx.quick,
      load: loadAverage()[0],
    });
    notes.push(`memory curve drawn in ${curveFile}`);

    return {
      failures,
      notes,
      data: {
        config: {
          ...config,
          rowsPerTenant: ROWS_PER_TENANT,
          concurrency: CONCURRENCY,
          connections: POOL_MAX,
          hotShare: HOT_SHARE,
          affinityBuilt: AFFINITY_BUILT,
        },
        curve,
        uniform: uniformRows,
        skewed: skewRows,
        targets: targets.values,
        curveFile,
      },
      tables: affinityTables({ config, curve, uniformRows, skewRows, POOL_MAX, CONCURRENCY }),
      chart: {
        title: `Tenant affinity: ${fmtInt(config.tenants)} tenants, 32 callers, 10 connections (queries/s, higher is better)`,
        unit: 'queries/s',
        series: Object.values(VARIANTS).map((v) => ({
          key: v.key,
          label: v.label,
          color: v.color,
        })),
        groups: [
          {
            label: `uniform over ${fmtInt(config.tenants)} tenants`,
            values: Object.fromEntries(uniformRows.map((r) => [r.variant, r.qps])),
          },
          {
            label: `skewed: one tenant sends ${HOT_SHARE * 100}%`,
            values: Object.fromEntries(skewRows.map((r) => [r.variant, r.qps])),
          },
        ],
      },
    };
  },
};
