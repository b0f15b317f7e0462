#!/usr/bin/env node
// Compares the files `npm pack` would publish with the list kept in scripts/packed-files.txt, so
// nothing ships by accident (tests, sample app, data dirs, secrets) and nothing required goes missing
// (LICENSE, README, CHANGELOG, every entry point). Run after `npm run build`.
//
//   node scripts/check-pack.mjs            check; exit 1 with the differences
//   node scripts/check-pack.mjs --update   rewrite the list from what npm would pack today
//
// The list is exact on purpose: a new file in the tarball is a decision, reviewed in the diff of
// packed-files.txt.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const listFile = join(root, 'scripts', 'packed-files.txt');
const header =
  '# Files `npm pack` publishes. Checked by scripts/check-pack.mjs; regenerate with\n' +
  '# `npm run build && node scripts/check-pack.mjs --update` and review the diff.\n';
// Whatever the list says, a tarball without these is broken.
const required = [
  'package.json',
  'LICENSE',
  'README.md',
  'CHANGELOG.md',
  'dist/index.js',
  'dist/index.d.ts',
  'dist/testing/index.js',
  'dist/testing/index.d.ts',
  'dist/terminus/index.js',
  'dist/terminus/index.d.ts',
  'dist/kysely/index.js',
  'dist/kysely/index.d.ts',
  'dist/integrations/bullmq/index.js',
  'dist/integrations/bullmq/index.d.ts',
  'dist/cli/bin.js',
];

if (!existsSync(join(root, 'dist', 'index.js'))) {
  console.error('check-pack: dist/ is missing; run `npm run build` first.');
  process.exit(1);
}

// --ignore-scripts: list what would ship without running any lifecycle script.
const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
  cwd: root,
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'pipe'],
});
const [pack] = JSON.parse(out);
const actual = pack.files.map((f) => f.path).sort();

if (process.argv.includes('--update')) {
  writeFileSync(listFile, header + actual.join('\n') + '\n');
  console.log(`check-pack: wrote ${actual.length} files to scripts/packed-files.txt`);
  process.exit(0);
}

const expected = readFileSync(listFile, 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const actualSet = new Set(actual);
const expectedSet = new Set(expected);
const unexpected = actual.filter((f) => !expectedSet.has(f));
const missing = expected.filter((f) => !actualSet.has(f));
const missingRequired = required.filter((f) => !actualSet.has(f));

if (unexpected.length || missing.length || missingRequired.length) {
  for (const f of unexpected) console.error(`  + ${f}   (would ship, not in the list)`);
  for (const f of missing) console.error(`  - ${f}   (in the list, would not ship)`);
  for (const f of missingRequired) console.error(`  ! ${f}   (required in every tarball)`);
  console.error(
    'check-pack: the tarball differs from scripts/packed-files.txt. If the change is intended, ' +
      'run `npm run build && node scripts/check-pack.mjs --update` and commit the list.',
  );
  process.exit(1);
}
console.log(
  `check-pack: ${actual.length} files as listed (${pack.size} bytes packed, ${pack.unpackedSize} unpacked)`,
);
