// pgbench's built-in select-only script (one primary-key lookup per transaction on
// pgbench_accounts) from a C client: the most this machine's PostgreSQL answers, as a ceiling
// for the Node figures. Skipped with a note when pgbench is not installed.
import { spawn, spawnSync } from 'node:child_process';

const CONCURRENCY = 32; // as the point-lookups workers
const BUDGET = 10; // as the point-lookups connection budget

function pgbenchVersion() {
  const probe = spawnSync('pgbench', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return undefined;
  return probe.stdout.trim();
}

function pgbench(args, url) {
  return new Promise((resolve, reject) => {
    // The URL (with its password) goes as the dbname argument, never into the log.
    const child = spawn('pgbench', [...args, url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve(out)
        : reject(
            new Error(
              `pgbench ${args.join(' ')} exited with ${code}:\n${out.replaceAll(url, '<url>')}`,
            ),
          ),
    );
  });
}

export default {
  name: 'pgbench',
  description: "pgbench -S (select-only) tps: the machine's ceiling for single-row lookups",

  async run(ctx) {
    const version = pgbenchVersion();
    if (!version) {
      const note =
        'pgbench not found on PATH: ceiling skipped (Debian/Ubuntu: apt-get install postgresql-client)';
      ctx.log(note);
      return { skipped: note, notes: [note], failures: [], data: { skipped: note } };
    }
    const seconds = ctx.quick ? 1 : 10;
    const database = await ctx.createDatabase('bench_pgbench');
    ctx.log(`${version}: pgbench -i -s 1 (100,000 accounts)`);
    await pgbench(['-i', '-s', '1', '-q'], database.url);

    const runs = [
      {
        key: 'simple-c32',
        label: `pgbench -S -c ${CONCURRENCY} -j 2 (simple protocol)`,
        args: ['-c', String(CONCURRENCY)],
      },
      {
        key: 'simple-c10',
        label: `pgbench -S -c ${BUDGET} -j 2 (simple protocol)`,
        args: ['-c', String(BUDGET)],
      },
      {
        key: 'extended-c10',
        label: `pgbench -S -c ${BUDGET} -j 2 -M extended`,
        args: ['-c', String(BUDGET), '-M', 'extended'],
      },
    ];
    const results = [];
    for (const run of runs) {
      const args = ['-S', ...run.args, '-j', '2', '-T', String(seconds)];
      const out = await pgbench(args, database.url);
      const tps = Number(out.match(/tps = ([\d.]+) \(without initial connection time\)/)?.[1]);
      const latency = Number(out.match(/latency average = ([\d.]+) ms/)?.[1]);
      if (!Number.isFinite(tps)) throw new Error(`could not read tps from pgbench output:\n${out}`);
      results.push({
        key: run.key,
        label: run.label,
        args: `pgbench ${args.join(' ')}`,
        tps: Math.round(tps),
        latencyAvgMs: latency,
      });
      ctx.log(`  ${run.label}: ${Math.round(tps)} tps, latency avg ${latency} ms`);
    }
    return {
      failures: [],
      notes: ctx.quick ? [`quick mode: pgbench runs of ${seconds} s (full: 10 s)`] : [],
      data: { version, scale: 1, seconds, results },
      tables: [
        {
          title: `pgbench select-only ceiling (${seconds} s per run, scale 1)`,
          columns: [
            { key: 'label', label: 'run', align: 'left' },
            { key: 'tps', label: 'tps', format: (v) => v.toLocaleString('en-US') },
            { key: 'latencyAvgMs', label: 'avg latency ms' },
          ],
          rows: results,
        },
      ],
      // Drawn as dashed lines on charts with the same unit.
      references: results
        .filter((r) => r.key !== 'simple-c10')
        .map((r) => ({
          unit: 'queries/s',
          label:
            r.key === 'simple-c32'
              ? `pgbench -S c=${CONCURRENCY}`
              : `pgbench -S -M ext. c=${BUDGET}`,
          value: r.tps,
        })),
    };
  },
};
