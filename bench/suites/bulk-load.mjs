// Bulk load: the same N rows (1,000,000; quick 50,000) into the same table, TRUNCATEd before
// every load, by
//   (P) psql \copy from a file in COPY text format (written untimed), psql process start included;
//   (C) SchemaDb.copyFrom(table, columns, rows): rows are JS arrays, encoded and sent by COPY;
//   (U) SchemaDb.insertMany(table, rows) in batches of BATCH rows: INSERT … SELECT unnest($n::type[]);
//   (V) the hand-written way: multi-row INSERT … VALUES ($1, $2, …), …, BATCH rows per statement.
// Rounds alternate the order. Correctness: after each load, count and an aggregate checksum
// over every column equal the source's. The psql baseline is skipped (loudly) without psql.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SchemaDb } from '../../dist/index.js';
import { createPool } from '../lib/postgres.mjs';
import { max, median, min, round } from '../lib/stats.mjs';
import { fmtFixed, fmtInt } from '../lib/table.mjs';

const run = promisify(execFile);
const PSQL = '/usr/bin/psql';
const BATCH = 1_000;
const FULL = { rows: 1_000_000, rounds: 3 };
const QUICK = { rows: 50_000, rounds: 2 };
const COLUMNS = ['id', 'account', 'kind', 'note', 'at', 'amount'];
const CHECKSUM_SQL = `SELECT count(*)::int AS n, sum(id)::text AS ids, sum(account)::text AS accounts,
  sum(length(kind) + length(coalesce(note, '')))::text AS chars,
  sum(extract(epoch FROM at))::text AS epochs, sum(amount)::text AS amounts FROM {{tables.events}}`;

const LABELS = {
  P: '(P) psql \\copy from a file',
  C: '(C) SchemaDb.copyFrom',
  U: `(U) SchemaDb.insertMany, ${fmtInt(BATCH)} rows per call`,
  V: `(V) multi-row VALUES, ${fmtInt(BATCH)} rows per statement`,
};
const COLORS = { P: '#76b7b2', C: '#f28e2b', U: '#ffbe7d', V: '#4e79a7' };

function makeRows(n) {
  const base = Date.UTC(2026, 0, 1);
  const rows = new Array(n);
  for (let i = 0; i < n; i++) {
    rows[i] = [
      i + 1,
      i % 977,
      ['click', 'view', 'buy', 'refund'][i % 4],
      i % 10 === 0 ? null : `note ${i}\twith a tab`,
      new Date(base + i * 1000),
      `${i % 10_000}.${String(i % 100).padStart(2, '0')}`,
    ];
  }
  return rows;
}

/** The rows in COPY text format, as psql reads them from a file. */
function copyText(rows) {
  const esc = (s) => s.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n');
  return rows
    .map((r) =>
      r
        .map((v) => (v === null ? '\\N' : v instanceof Date ? v.toISOString() : esc(String(v))))
        .join('\t'),
    )
    .join('\n')
    .concat('\n');
}

function valuesSql(count) {
  const tuples = [];
  for (let r = 0; r < count; r++) {
    const p = COLUMNS.map((_, c) => `$${r * COLUMNS.length + c + 1}`);
    tuples.push(`(${p.join(', ')})`);
  }
  return `INSERT INTO {{tables.events}} (${COLUMNS.join(', ')}) VALUES ${tuples.join(', ')}`;
}

export default {
  name: 'bulk-load',
  description: 'copyFrom vs psql \\copy, insertMany vs multi-row VALUES batches (rows/s)',
  async run(ctx) {
    const config = ctx.quick ? QUICK : FULL;
    const failures = [];
    const notes = [];
    const database = await ctx.createDatabase('bench_bulk');
    const pool = createPool({ connectionString: database.url, max: 2, application_name: 'bench_bulk' });
    ctx.defer(() => pool.end());
    const db = SchemaDb.create(pool, 'bulk');
    await db.execute('CREATE SCHEMA {{schema}}');
    await db.execute(`CREATE TABLE {{tables.events}} (
      id bigint PRIMARY KEY, account int NOT NULL, kind text NOT NULL, note text,
      at timestamptz NOT NULL, amount numeric(12, 2) NOT NULL)`);
    const rows = makeRows(config.rows);
    await db.copyFrom('events', COLUMNS, rows);
    const reference = await db.fetchOne(CHECKSUM_SQL);
    if (reference.n !== config.rows) failures.push(`reference load has ${reference.n} rows`);

    const dir = await mkdtemp(join(tmpdir(), 'bench-bulk-'));
    ctx.defer(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'events.tsv');
    const hasPsql = existsSync(PSQL);
    if (hasPsql) {
      await writeFile(file, copyText(rows));
    } else {
      const warning = `psql not found at ${PSQL}: the (P) psql \\copy baseline is SKIPPED, copyFrom has no baseline in this run (apt-get install postgresql-client)`;
      ctx.log(`WARNING: ${warning}`);
      notes.push(warning);
    }
    const valuesText = valuesSql(BATCH);
    const loaders = {
      P: async () => {
        await run(PSQL, [
          database.url,
          '-v',
          'ON_ERROR_STOP=1',
          '-qc',
          `\\copy bulk.events (${COLUMNS.join(', ')}) FROM '${file}'`,
        ]);
      },
      C: () => db.copyFrom('events', COLUMNS, rows),
      U: async () => {
        for (let i = 0; i < rows.length; i += BATCH) {
          await db.insertMany('events', rows.slice(i, i + BATCH), { columns: COLUMNS });
        }
      },
      V: async () => {
        for (let i = 0; i < rows.length; i += BATCH) {
          const batch = rows.slice(i, i + BATCH);
          const sql = batch.length === BATCH ? valuesText : valuesSql(batch.length);
          await db.execute(sql, batch.flat());
        }
      },
    };
    const keys = Object.keys(loaders).filter((k) => k !== 'P' || hasPsql);
    const times = Object.fromEntries(keys.map((k) => [k, []]));
    for (let round_ = 0; round_ < config.rounds; round_++) {
      const order = round_ % 2 === 0 ? keys : [...keys].reverse();
      for (const key of order) {
        await db.execute('TRUNCATE {{tables.events}}');
        await db.execute('CHECKPOINT');
        const t0 = performance.now();
        await loaders[key]();
        times[key].push(performance.now() - t0);
        const got = await db.fetchOne(CHECKSUM_SQL);
        if (JSON.stringify(got) !== JSON.stringify(reference)) {
          failures.push(`${LABELS[key]}: loaded table differs (${JSON.stringify(got)} vs ${JSON.stringify(reference)})`);
        }
      }
      ctx.log(`round ${round_ + 1}/${config.rounds} done`);
    }
    const results = keys.map((key) => {
      const ms = median(times[key]);
      return {
        variant: key,
        label: LABELS[key],
        rowsPerSec: Math.round(config.rows / (ms / 1000)),
        ms: round(ms, 0),
        rangeMs: `${min(times[key]).toFixed(0)}–${max(times[key]).toFixed(0)}`,
      };
    });
    const rate = Object.fromEntries(results.map((r) => [r.variant, r.rowsPerSec]));
    for (const r of results) {
      r.ratio =
        r.variant === 'C' && rate.P ? rate.C / rate.P : r.variant === 'U' ? rate.U / rate.V : undefined;
    }
    if (rate.P) notes.push(`bulk-load: copyFrom ${(rate.C / rate.P).toFixed(2)}x psql \\copy rows/s (${fmtInt(config.rows)} rows, median of ${config.rounds})`);
    notes.push(`bulk-load: insertMany ${(rate.U / rate.V).toFixed(2)}x multi-row VALUES rows/s at ${fmtInt(BATCH)} rows per statement; copyFrom ${(rate.C / rate.V).toFixed(2)}x VALUES`);
    return {
      failures,
      notes,
      data: { config: { ...config, batch: BATCH, psql: hasPsql }, times, results },
      tables: [
        {
          title: `Bulk load of ${fmtInt(config.rows)} rows (6 columns, primary key), median of ${config.rounds} rounds, same run`,
          columns: [
            { key: 'label', label: 'variant', align: 'left' },
            { key: 'rowsPerSec', label: 'rows/s', format: fmtInt },
            { key: 'ratio', label: 'C/P, U/V', format: (v) => (v === undefined ? '' : v.toFixed(2)) },
            { key: 'ms', label: 'median ms', format: fmtFixed(0) },
            { key: 'rangeMs', label: 'range ms', align: 'left' },
          ],
          rows: results,
        },
      ],
      chart: {
        title: `Bulk load of ${fmtInt(config.rows)} rows (rows/s, higher is better)`,
        unit: 'rows/s',
        series: keys.map((k) => ({ key: k, label: LABELS[k], color: COLORS[k] })),
        groups: [{ label: `${fmtInt(config.rows)} rows`, values: rate }],
      },
    };
  },
};
