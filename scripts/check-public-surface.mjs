#!/usr/bin/env node
// Counts the names each entry point exports (values and types), and fails when the main entry
// exports more than MAIN_LIMIT: the main entry is the stable API an app uses; the rest belongs on
// a subpath (`npm run check`, step `public-surface`; `--list` prints every name).
import ts from 'typescript';

const MAIN_LIMIT = 90;
const ENTRIES = {
  '.': 'lib/index.ts',
  './migrations': 'lib/migrations/index.ts',
  './tenancy': 'lib/tenancy/index.ts',
  './observability': 'lib/observability/index.ts',
  './advanced': 'lib/advanced.ts',
  './testing': 'lib/testing/index.ts',
  './terminus': 'lib/terminus/index.ts',
  './kysely': 'lib/kysely/index.ts',
  './bullmq': 'lib/integrations/bullmq/index.ts',
  './microservices': 'lib/integrations/microservices/index.ts',
  './schedule': 'lib/integrations/schedule/index.ts',
  './cache-manager': 'lib/integrations/cache-manager/index.ts',
  './graphql': 'lib/integrations/graphql/index.ts',
  './websockets': 'lib/integrations/websockets/index.ts',
};
const program = ts.createProgram(Object.values(ENTRIES), {
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  target: ts.ScriptTarget.ES2022,
  experimentalDecorators: true,
  skipLibCheck: true,
  noEmit: true,
});
const checker = program.getTypeChecker();
const list = process.argv.includes('--list');
let total = 0;
let failed = false;
for (const [subpath, file] of Object.entries(ENTRIES)) {
  const source = program.getSourceFile(file);
  const names = checker.getExportsOfModule(checker.getSymbolAtLocation(source)).map((s) => s.name);
  total += names.length;
  console.log(`${`nestjs-pg-tenancy${subpath === '.' ? '' : subpath.slice(1)}`.padEnd(34)} ${names.length}`);
  if (list) console.log(`  ${names.sort().join(', ')}`);
  if (subpath === '.' && names.length > MAIN_LIMIT) {
    console.error(`The main entry exports ${names.length} names, over ${MAIN_LIMIT}: move the advanced ones to a subpath.`);
    failed = true;
  }
}
console.log(`${'all entry points'.padEnd(34)} ${total}`);
process.exit(failed ? 1 : 0);
