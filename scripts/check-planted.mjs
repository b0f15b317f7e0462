#!/usr/bin/env node
// Planted bugs the test suite must catch (`npm run check:planted`; by hand before a release, not
// in `npm run check` or CI: each entry runs its specs, seconds to minutes).
//
// Every test/planted/*.json holds an array of entries:
//   { "name": "...", "file": "lib/...", "find": "<text>", "replace": "<the buggy text>",
//     "tests": ["test/.../x.spec.ts", ...] }
// For each one, `find` must occur exactly once in `file` (else the entry is stale: the code moved
// on, so update the entry). The replacement is written, the listed specs run with Jest (`--bail`),
// and the file is put back, whatever happens (a failure, an error, Ctrl-C). The bug is caught when
// at least one test fails. A spec that cannot run at all (a compile error, a missing file) is
// reported as an error, not as caught: a planted bug must be a realistic change that compiles.
// Specs that run the built output (the CLI binary, the sample app: they mention dist/, or import a
// test/support module that does) get `npm run build` with the bug applied, and again once it is
// removed.
//
//   node scripts/check-planted.mjs [--only <name substring>] [--list] [--baseline] [--verbose]
//     --only      entries whose name contains this text (case-insensitive); may be repeated
//     --list      print the entries and whether each still applies; run nothing
//     --baseline  first run each entry's specs on the unchanged code: they must pass, or a
//                 failure would prove nothing
//     --verbose   show Jest's output
// Exits 0 only when every selected entry was caught.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);
const PLANTED_DIR = 'test/planted';
const JEST = [
  '--experimental-vm-modules',
  '--no-warnings=ExperimentalWarning',
  'node_modules/jest/bin/jest.js',
];

function usage(message) {
  if (message) console.error(`check-planted: ${message}`);
  console.error(
    'usage: node scripts/check-planted.mjs [--only <name substring>] [--list] [--baseline] [--verbose]',
  );
  process.exit(2);
}

const args = { only: [], list: false, baseline: false, verbose: false };
for (let i = 2; i < process.argv.length; i++) {
  const arg = process.argv[i];
  if (arg === '--only') {
    const value = process.argv[++i];
    if (!value) usage('--only needs a name substring');
    args.only.push(value.toLowerCase());
  } else if (arg.startsWith('--only=')) args.only.push(arg.slice(7).toLowerCase());
  else if (arg === '--list') args.list = true;
  else if (arg === '--baseline') args.baseline = true;
  else if (arg === '--verbose') args.verbose = true;
  else usage(`unknown argument ${arg}`);
}

/** Every entry of every list, with the list it came from; malformed lists stop the run. */
function readEntries() {
  if (!existsSync(PLANTED_DIR)) usage(`no ${PLANTED_DIR}/ folder`);
  const entries = [];
  const problems = [];
  for (const listFile of readdirSync(PLANTED_DIR).filter((f) => f.endsWith('.json')).sort()) {
    const path = `${PLANTED_DIR}/${listFile}`;
    let list;
    try {
      list = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      problems.push(`${path}: not JSON (${err.message})`);
      continue;
    }
    if (!Array.isArray(list)) {
      problems.push(`${path}: must hold an array of entries`);
      continue;
    }
    list.forEach((entry, index) => {
      const where = `${path}[${index}]`;
      // `replace` may be empty: deleting a line is a bug too.
      const bad = ['name', 'file', 'find'].filter(
        (key) => typeof entry?.[key] !== 'string' || entry[key] === '',
      );
      if (typeof entry?.replace !== 'string') bad.push('replace');
      const tests = entry?.tests;
      if (!Array.isArray(tests) || tests.length === 0 || tests.some((t) => typeof t !== 'string')) {
        bad.push('tests');
      }
      if (bad.length > 0) problems.push(`${where}: missing or empty ${bad.join(', ')}`);
      else if (entry.find === entry.replace) problems.push(`${where}: replace equals find`);
      else entries.push({ ...entry, list: path });
    });
  }
  const names = new Map();
  for (const entry of entries) {
    if (names.has(entry.name)) {
      problems.push(`"${entry.name}" is in ${names.get(entry.name)} and ${entry.list}`);
    }
    names.set(entry.name, entry.list);
  }
  if (problems.length > 0) {
    for (const problem of problems) console.error(`check-planted: ${problem}`);
    process.exit(2);
  }
  return entries;
}

/** Why an entry cannot be applied to the code as it is, or undefined when it can. */
function staleReason(entry) {
  if (!existsSync(entry.file)) return `${entry.file} does not exist`;
  const missing = entry.tests.filter((t) => !existsSync(t));
  if (missing.length > 0) return `no such spec: ${missing.join(', ')}`;
  const text = readFileSync(entry.file, 'utf8');
  const count = text.split(entry.find).length - 1;
  if (count !== 1) return `"find" occurs ${count} times in ${entry.file} (must be exactly once)`;
  return undefined;
}

/** Whether a spec, or a test/support module it imports, runs what is built into dist/. */
function usesBuild(spec) {
  const seen = new Set();
  const visit = (file) => {
    if (seen.has(file) || !existsSync(file)) return false;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    if (/\bdist\b/.test(text)) return true;
    for (const [, rel] of text.matchAll(/from '(\.{1,2}\/[^']*support\/[^']*)\.js'/g)) {
      if (visit(join(dirname(file), `${rel}.ts`))) return true;
    }
    return false;
  };
  return visit(spec);
}

// The one file changed at a time, and whether dist/ was built from it, so that every way out puts
// the code back.
let planted; // { file, original }
let distDirty = false;
let child;

function restore() {
  if (!planted) return;
  writeFileSync(planted.file, planted.original);
  planted = undefined;
}

function build() {
  const result = spawnSync('npm', ['run', '-s', 'build'], { stdio: 'inherit' });
  if (result.status !== 0) throw new Error('npm run build failed');
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    restore();
    // Jest runs in a process group of its own: end it with what it started (an embedded server).
    if (child) {
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    if (distDirty) {
      rmSync('dist', { recursive: true, force: true });
      console.error('\ncheck-planted: dist/ held a planted bug and was removed: run npm run build');
    }
    console.error(`\ncheck-planted: stopped by ${signal}; every file was restored`);
    process.exit(130);
  });
}
process.on('exit', restore);

/** Runs Jest on `tests`; resolves to its exit code and what it printed (its report is on stderr). */
function jest(tests) {
  return new Promise((resolvePromise, reject) => {
    child = spawn(process.execPath, [...JEST, '--bail', '--ci', '--runTestsByPath', ...tests], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let output = '';
    const keep = (chunk) => {
      if (args.verbose) process.stderr.write(chunk);
      output = (output + chunk).slice(-2_000_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', reject);
    child.on('close', (code) => {
      child = undefined;
      resolvePromise({ code, output });
    });
  });
}

/**
 * What a Jest run says, from its summary lines (`--json` writes nothing once `--bail` stops the
 * run): how many tests failed or ran, which failed first, and why a suite could not run.
 */
function outcome({ code, output }) {
  // eslint-disable-next-line no-control-regex
  const text = output.replace(/\u001b\[[0-9;]*m/g, '');
  const tests = /^Tests:\s+(.*)$/m.exec(text)?.[1] ?? '';
  const failed = Number(/(\d+) failed/.exec(tests)?.[1] ?? 0);
  const ran = Number(/(\d+) total/.exec(tests)?.[1] ?? 0);
  const headings = [...text.matchAll(/^\s*● (.+)$/gm)].map((m) => m[1].trim());
  const firstFailure = headings.find((h) => h !== 'Test suite failed to run');
  const cannotRun = /● Test suite failed to run\s*\n\s*\n?\s*(.+)/.exec(text)?.[1]?.trim();
  const tail = text.trim().split('\n').slice(-3).join(' | ');
  return { code, failed, ran, firstFailure, cannotRun, tail };
}

const seconds = (start) => `${((Date.now() - start) / 1000).toFixed(0)} s`;

async function runEntry(entry) {
  const reason = staleReason(entry);
  if (reason) return { status: 'stale', detail: reason };
  const needsBuild = entry.tests.some(usesBuild);
  if (args.baseline) {
    const base = outcome(await jest(entry.tests));
    if (base.code !== 0 || base.ran === 0) {
      return {
        status: 'error',
        detail: `fails without the bug: ${base.firstFailure ?? base.cannotRun ?? base.tail}`,
      };
    }
  }
  const original = readFileSync(entry.file, 'utf8');
  planted = { file: entry.file, original };
  let result;
  try {
    writeFileSync(entry.file, original.replace(entry.find, () => entry.replace));
    if (needsBuild) {
      distDirty = true;
      build();
    }
    result = outcome(await jest(entry.tests));
  } finally {
    restore();
    if (distDirty) {
      build();
      distDirty = false;
    }
  }
  if (result.failed > 0) return { status: 'caught', detail: result.firstFailure };
  if (result.code === 0 && result.ran > 0) {
    return { status: 'NOT caught', detail: `${result.ran} tests passed with the bug in place` };
  }
  return {
    status: 'error',
    detail: `the specs did not run: ${result.cannotRun ?? result.tail ?? `exit ${result.code}`}`,
  };
}

const all = readEntries();
const selected = args.only.length
  ? all.filter((e) => args.only.some((part) => e.name.toLowerCase().includes(part)))
  : all;
if (selected.length === 0) usage(`no entry matches ${args.only.join(', ')} (of ${all.length})`);

if (args.list) {
  for (const entry of selected) {
    const reason = staleReason(entry);
    console.log(`${reason ? 'stale' : 'ok   '}  ${entry.name}  (${entry.list})${reason ? `: ${reason}` : ''}`);
  }
  process.exit(selected.some(staleReason) ? 1 : 0);
}

if (!existsSync('dist/testing/index.js')) {
  console.log('dist/ is missing (Jest\'s global setup loads it): running npm run build');
  build();
}
const started = Date.now();
const rows = [];
for (const [index, entry] of selected.entries()) {
  const start = Date.now();
  process.stdout.write(`[${index + 1}/${selected.length}] ${entry.name} … `);
  let row;
  try {
    row = await runEntry(entry);
  } catch (err) {
    row = { status: 'error', detail: err.message };
  }
  row = { ...row, name: entry.name, list: entry.list, time: seconds(start) };
  console.log(`${row.status} (${row.time})`);
  rows.push(row);
}

const width = Math.max(...rows.map((r) => r.name.length), 4);
console.log(`\n${'STATUS'.padEnd(10)}  ${'NAME'.padEnd(width)}  TIME   DETAIL`);
for (const row of rows) {
  console.log(
    `${row.status.padEnd(10)}  ${row.name.padEnd(width)}  ${row.time.padStart(5)}  ${row.detail ?? ''}`,
  );
}
const counts = Object.groupBy(rows, (r) => r.status);
const tally = ['caught', 'NOT caught', 'stale', 'error']
  .filter((s) => counts[s])
  .map((s) => `${counts[s].length} ${s}`)
  .join(', ');
console.log(`\n${tally} of ${rows.length} planted bugs, in ${seconds(started)}`);
process.exit(rows.every((r) => r.status === 'caught') ? 0 : 1);
