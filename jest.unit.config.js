// The unit specs only (pure modules, no database): what `npm run mutate` (StrykerJS) runs for
// every mutant, so it must stay fast.
import base from './jest.config.js';

/** @type {import('jest').Config} */
export default {
  ...base,
  roots: ['<rootDir>/test/unit'],
  globalSetup: undefined,
  globalTeardown: undefined,
};
