#!/usr/bin/env node
// No file in lib/ over 400 lines without a recorded reason (`npm run check`, step `file-size`).
// A reason is a line in scripts/long-files.txt: `path  reason`. A listed file that is no longer
// long is reported too, so the list cannot rot.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const LIMIT = 400;
const listed = new Map(
  readFileSync(new URL('./long-files.txt', import.meta.url), 'utf8')
    .split('\n')
    .filter((line) => line.trim() && !line.startsWith('#'))
    .map((line) => {
      const [path, ...reason] = line.trim().split(/\s+/);
      return [path, reason.join(' ')];
    }),
);
const problems = [];
const files = readdirSync('lib', { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.ts'))
  .map((f) => join('lib', f).split('\\').join('/'))
  .sort();
for (const file of files) {
  const lines = readFileSync(file, 'utf8').split('\n').length - 1;
  const reason = listed.get(file);
  if (lines > LIMIT && !reason) {
    problems.push(`${file}: ${lines} lines (over ${LIMIT}): split it, or record why in scripts/long-files.txt`);
  } else if (lines <= LIMIT && listed.has(file)) {
    problems.push(`${file}: ${lines} lines, no longer over ${LIMIT}: remove it from scripts/long-files.txt`);
  }
}
for (const file of listed.keys()) {
  if (!files.includes(file)) problems.push(`${file}: listed in scripts/long-files.txt but missing`);
}
for (const p of problems) console.error(p);
if (problems.length === 0) console.log(`${files.length} files in lib/, none over ${LIMIT} lines without a reason.`);
process.exit(problems.length ? 1 : 0);
