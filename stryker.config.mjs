// Mutation testing of the pure modules against the unit specs (`npm run mutate`).
// @ts-check
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'jest',
  // Jest runs in native ESM here, as in `npm test`.
  testRunnerNodeArgs: ['--experimental-vm-modules', '--no-warnings=ExperimentalWarning'],
  // The docs specs (test/unit/docs) type-check every code block of the guides: they guard the
  // documentation, not these modules, and would cost seconds per mutant.
  jest: {
    projectType: 'custom',
    configFile: 'jest.unit.config.js',
    config: { testPathIgnorePatterns: ['/node_modules/', '/test/unit/docs/'] },
  },
  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.stryker.json',
  coverageAnalysis: 'perTest',
  mutate: [
    'lib/shared/identifiers.ts',
    'lib/core/sql/sql-template.ts',
    'lib/connection/pool-options.ts',
    'lib/connection/connection-errors.ts',
    'lib/tenancy/tenancy-options.ts',
    'lib/tenancy/routing/tenant-resolvers.ts',
    'lib/observability/http-errors.ts',
    'lib/migrations/migration-files.ts',
  ],
  ignorePatterns: ['dist', 'sample-app', 'bench', 'compat', 'coverage', '.data', 'reports'],
  tempDirName: '.stryker-tmp',
  reporters: ['clear-text', 'progress', 'html'],
  htmlReporter: { fileName: 'reports/mutation/index.html' },
  concurrency: 2,
};
