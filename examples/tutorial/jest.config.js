/** @type {import('jest').Config} */
export default {
  testEnvironment: 'node',
  // The specs are TypeScript ES modules: ts-jest compiles each one (see isolatedModules in
  // tsconfig.json), and Node runs them as ES modules (--experimental-vm-modules in npm test).
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { useESM: true }] },
  // The sources import each other as './x.js'; in a test run that file is './x.ts'.
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  // The first run may start an embedded PostgreSQL (initdb included).
  testTimeout: 60_000,
};
