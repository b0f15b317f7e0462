// The `affinity` suite's tables and its figures against the issue's targets (reported, never
// asserted: the suite checks correctness only).
import { mkdir, writeFile } from 'node:fs/promises';
import { VARIANTS } from './affinity-variants.mjs';
import { describeMachine } from './machine.mjs';
import { max, median, min, round } from './stats.mjs';
import { renderLineChart } from './svg.mjs';
import { fmtFixed, fmtInt } from './table.mjs';

const pct = (v) => (v === undefined ? '' : `${(v * 100).toFixed(1)}%`);
const fixed = (digits) => (v) => (v === undefined ? '' : fmtFixed(digits)(v));
const ratio = (a, b) => (b ? fmtFixed(2)(a / b) : '');

const share = (part, whole) => (whole ? round(part / whole, 4) : undefined);

/**
 * Medians over a variant's rounds (queries/s with its range, CPU per query, hit rate) and the
 * affinity counters summed over them, with the preferred and stolen shares of the checkouts.
 */
export function summarizeRounds(rounds) {
  const qps = rounds.map((x) => x.qps);
  const medianOf = (key) =>
    rounds[0][key] === undefined ? undefined : median(rounds.map((x) => x[key]));
  const out = {
    qps: round(median(qps)),
    qpsMin: round(min(qps)),
    qpsMax: round(max(qps)),
    serverCpuUsPerQuery: medianOf('serverCpuUsPerQuery'),
    clientCpuUsPerQuery: medianOf('clientCpuUsPerQuery'),
    hitRate: medianOf('hitRate'),
  };
  if (rounds.some((x) => x.affinity)) {
    const affinity = {};
    for (const { affinity: counters } of rounds)
      for (const [key, value] of Object.entries(counters ?? {}))
        affinity[key] = (affinity[key] ?? 0) + value;
    Object.assign(out, {
      affinity,
      preferredShare: share(affinity.preferred, affinity.checkouts),
      stolenShare: share(affinity.stolen, affinity.checkouts),
    });
  }
  return out;
}

/** The done-when figures: each a same-run ratio, its target, and whether it is met. */
export function targetNotes({ curve, uniformRows, skewRows }) {
  const byKey = (rows, key) => rows.find((r) => r.variant === key);
  const lastOff = curve.off.at(-1);
  const lastOn = curve.on.at(-1);
  const on = byKey(uniformRows, 'on');
  const off = byKey(uniformRows, 'off');
  const skewOn = byKey(skewRows, 'on');
  const values = {
    catalogAfterSweepOnToOff: lastOff.relcacheMiB
      ? lastOn.relcacheMiB / lastOff.relcacheMiB
      : undefined,
    memoryAfterSweepOnToOff: lastOff.totalMiB ? lastOn.totalMiB / lastOff.totalMiB : undefined,
    catalogAfterRoundsOnToOff: on.memory.relcacheMiB / off.memory.relcacheMiB,
    memoryAfterRoundsOnToOff: on.memory.totalMiB / off.memory.totalMiB,
    hitRateOn: on.hitRate,
    uniformOnToRaw: on.ratioToRaw,
    skewedOnToOff: skewOn.ratioToOff,
    skewedQuietP99OnToOff: skewOn.p99ToOff,
  };
  const check = (value, target, below) =>
    value === undefined ? 'n/a' : (below ? value <= target : value >= target) ? 'met' : 'NOT met';
  const notes = [
    `server memory per connection after the passes over ${fmtInt(lastOn.tenants)} tenants: catalog caches on ${lastOn.relcacheMiB} MiB, off ${lastOff.relcacheMiB} MiB = ${fmtFixed(3)(values.catalogAfterSweepOnToOff)} of off (target <= 0.25: ${check(values.catalogAfterSweepOnToOff, 0.25, true)}); whole backend (plans included) on ${lastOn.totalMiB} MiB, off ${lastOff.totalMiB} MiB = ${fmtFixed(3)(values.memoryAfterSweepOnToOff)} of off (${check(values.memoryAfterSweepOnToOff, 0.25, true)})`,
    `server memory per connection after the uniform rounds as well (steady state): catalog caches on ${on.memory.relcacheMiB} MiB, off ${off.memory.relcacheMiB} MiB = ${fmtFixed(3)(values.catalogAfterRoundsOnToOff)} of off (${check(values.catalogAfterRoundsOnToOff, 0.25, true)}); whole backend ${fmtFixed(3)(values.memoryAfterRoundsOnToOff)} of off (${check(values.memoryAfterRoundsOnToOff, 0.25, true)})${lastOn.affinity?.recycled ? `; the passes over ${fmtInt(lastOn.tenants)} tenants recycled ${lastOn.affinity.recycled} of on's connections just before the first reading` : ''}`,
    `uniform: statement hit rate on ${pct(values.hitRateOn)} (target >= 90%: ${check(values.hitRateOn, 0.9)}); throughput on/raw ${fmtFixed(3)(values.uniformOnToRaw)} (target >= 1.3: ${check(values.uniformOnToRaw, 1.3)})`,
    `skewed: throughput on/off ${fmtFixed(3)(values.skewedOnToOff)} (target >= 0.95: ${check(values.skewedOnToOff, 0.95)}); quiet tenants' p99 on/off ${fmtFixed(3)(values.skewedQuietP99OnToOff)} (target <= 1.2: ${check(values.skewedQuietP99OnToOff, 1.2, true)})`,
  ];
  return { values, notes };
}

/** The columns of a measured round that the uniform and the skewed tables share. */
const roundColumns = [
  { key: 'serverCpuUsPerQuery', label: 'server CPU µs/q', format: fixed(1) },
  { key: 'clientCpuUsPerQuery', label: 'client CPU µs/q', format: fixed(1) },
  { key: 'hitRate', label: 'hit rate', format: pct },
  { key: 'preferredShare', label: 'preferred', format: pct },
  { key: 'stolenShare', label: 'stolen', format: pct },
];

/** The console tables: the memory curve, uniform traffic, skewed traffic. */
export function affinityTables({ config, curve, uniformRows, skewRows, POOL_MAX, CONCURRENCY }) {
  const curveRows = curve.off.map((off, i) => ({ tenants: off.tenants, off, on: curve.on[i] }));
  const at = (key, field, format) => (_, row) => format(row[key][field]);
  return [
    {
      title: `Memory curve: server memory per pooled connection (pg_backend_memory_contexts, mean and max of ${POOL_MAX}) and distinct schemas each served, after ${config.passes} shuffled passes over the first N tenants (${CONCURRENCY} callers)`,
      columns: [
        { key: 'tenants', label: 'tenants', format: fmtInt },
        { key: 'x1', label: 'off MiB/conn', format: at('off', 'totalMiB', fixed(1)) },
        { key: 'x2', label: 'catalog', format: at('off', 'relcacheMiB', fixed(1)) },
        { key: 'x3', label: 'plans', format: at('off', 'plansMiB', fixed(1)) },
        { key: 'x4', label: 'schemas/conn', format: at('off', 'schemasPerConn', fmtInt) },
        { key: 'x5', label: 'on MiB/conn', format: at('on', 'totalMiB', fixed(1)) },
        { key: 'x6', label: 'catalog', format: at('on', 'relcacheMiB', fixed(1)) },
        { key: 'x7', label: 'plans', format: at('on', 'plansMiB', fixed(1)) },
        { key: 'x8', label: 'schemas/conn', format: at('on', 'schemasPerConn', fmtInt) },
        {
          key: 'x9',
          label: 'on/off total',
          format: (_, r) => ratio(r.on.totalMiB, r.off.totalMiB),
        },
        {
          key: 'x10',
          label: 'on/off catalog',
          format: (_, r) => ratio(r.on.relcacheMiB, r.off.relcacheMiB),
        },
        {
          key: 'x13',
          label: 'on recycled',
          format: (_, r) => (r.on.affinity ? String(r.on.affinity.recycled ?? '') : ''),
        },
        { key: 'x11', label: 'hit rate off', format: at('off', 'hitRate', pct) },
        { key: 'x12', label: 'hit rate on', format: at('on', 'hitRate', pct) },
      ],
      rows: curveRows,
    },
    {
      title: `Uniform traffic over ${fmtInt(config.tenants)} tenants: ${CONCURRENCY} callers, ${POOL_MAX} connections, median of ${config.rounds} rounds × ${config.roundMs / 1000} s; memory read after the rounds`,
      columns: [
        { key: 'label', label: 'variant', align: 'left' },
        { key: 'qps', label: 'queries/s', format: fmtInt },
        { key: 'ratioToRaw', label: 'vs raw', format: fixed(2) },
        { key: 'ratioToOff', label: 'vs off', format: fixed(2) },
        { key: 'p99Ms', label: 'p99 ms', format: fixed(2) },
        ...roundColumns,
        {
          key: 'x1',
          label: 'recycled',
          format: (_, r) => (r.affinity ? String(r.affinity.recycled ?? '') : ''),
        },
        { key: 'x2', label: 'MiB/conn', format: (_, r) => fmtFixed(1)(r.memory.totalMiB) },
        { key: 'x3', label: 'max MiB', format: (_, r) => fmtFixed(1)(r.memory.maxMiB) },
        { key: 'x5', label: 'catalog', format: (_, r) => fmtFixed(1)(r.memory.relcacheMiB) },
        { key: 'x6', label: 'plans', format: (_, r) => fmtFixed(1)(r.memory.plansMiB) },
        { key: 'memoryToOff', label: 'mem vs off', format: fixed(2) },
        {
          key: 'x4',
          label: 'schemas/conn',
          format: (_, r) =>
            `${fmtInt(r.memory.schemasPerConn)} (max ${fmtInt(r.memory.schemasPerConnMax)})`,
        },
      ],
      rows: uniformRows,
    },
    {
      title: `Skewed traffic: ${fmtInt(config.tenants)} tenants, one sends half of the queries; median of ${config.rounds} rounds × ${config.roundMs / 1000} s`,
      columns: [
        { key: 'label', label: 'variant', align: 'left' },
        { key: 'qps', label: 'queries/s', format: fmtInt },
        { key: 'ratioToOff', label: 'vs off', format: fixed(2) },
        { key: 'quietP50Ms', label: 'quiet p50 ms', format: fixed(2) },
        { key: 'quietP99Ms', label: 'quiet p99 ms', format: fixed(2) },
        { key: 'p99ToOff', label: 'p99 vs off', format: fixed(2) },
        ...roundColumns,
      ],
      rows: skewRows,
    },
  ];
}

const RESULTS = new URL('../results/', import.meta.url);

/**
 * Draws the memory curve on its own, for the README: results/affinity-memory.svg, or
 * affinity-memory-quick.svg for a quick run. `data` is the suite's `data` (config, curve,
 * uniform); returns the file's path from the repository root.
 */
export async function writeCurve({ data, machine, postgresVersion, date, quick, load }) {
  const { config, curve, uniform } = data;
  const name = quick ? 'affinity-memory-quick.svg' : 'affinity-memory.svg';
  const svg = renderLineChart({
    title: 'PostgreSQL server memory per pooled connection vs tenant schemas in the traffic',
    subtitle: [
      describeMachine(machine, postgresVersion),
      `${date.slice(0, 16).replace('T', ' ')} UTC — ${quick ? 'quick run, indicative only' : 'full run'} — 10 connections, 32 callers, ${config.passes} shuffled passes over the tenants per point — load ${load}`,
      ...curve.on
        .filter((p) => p.affinity?.recycled)
        .map(
          (p) =>
            `affinity on: ${p.affinity.recycled} connection(s) recycled at the schema bound during the passes over ${fmtInt(p.tenants)} tenants`,
        ),
    ],
    xLabel: 'tenant schemas in the traffic',
    yLabel: 'MiB per connection (mean, pg_backend_memory_contexts)',
    series: ['off', 'on'].flatMap((key) => [
      {
        key,
        label: `${VARIANTS[key].short}: whole backend`,
        color: VARIANTS[key].color,
        points: curve[key].map((p) => ({ x: p.tenants, y: p.totalMiB })),
      },
      {
        key: `${key}-catalog`,
        label: `${VARIANTS[key].short}: catalog caches (CacheMemoryContext, index info)`,
        color: VARIANTS[key].color,
        dashed: true,
        labels: 'last',
        points: curve[key].map((p) => ({ x: p.tenants, y: p.relcacheMiB })),
      },
      {
        key: `${key}-steady`,
        label: `${VARIANTS[key].short}: whole backend after the ${config.rounds} uniform rounds as well`,
        color: VARIANTS[key].color,
        markersOnly: true,
        points: [{ x: config.tenants, y: uniform.find((r) => r.variant === key).memory.totalMiB }],
      },
    ]),
  });
  await mkdir(RESULTS, { recursive: true });
  await writeFile(new URL(name, RESULTS), svg);
  return `bench/results/${name}`;
}

/**
 * Redraws the memory curve from a run's report (`run.mjs --replot <name>`, after a chart
 * change); `undefined` when the run had no `affinity` suite.
 */
export async function replotCurve(report) {
  const suite = report.suites?.affinity;
  if (!suite?.data?.curve) return undefined;
  return writeCurve({
    data: suite.data,
    machine: report.machine,
    postgresVersion: report.postgres?.version,
    date: report.date,
    quick: report.mode === 'quick',
    load: suite.loadAverageAtEnd?.[0],
  });
}
