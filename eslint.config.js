// @ts-check
// Type-aware lint over the library, the sample app and the tests. `npm run lint`.
import { includeIgnoreFile } from '@eslint/compat';
import eslint from '@eslint/js';
import globals from 'globals';
import { fileURLToPath } from 'node:url';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  // Whatever git ignores (build output, coverage, data dirs, tool scratch copies) is not linted.
  includeIgnoreFile(fileURLToPath(new URL('.gitignore', import.meta.url))),
  // Built against the packed tarball with their own tsconfig (test/package/packed-package.spec.ts).
  { ignores: ['examples/**', 'test/fixtures/cjs-app/**'] },
  {
    files: ['**/*.ts'],
    extends: [eslint.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      // A dropped promise loses an error or a connection: both are on (they are in
      // recommendedTypeChecked too; stated here so nobody switches them off by accident).
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      // Re-rejecting a caught value is the same as rethrowing it; the rule cannot see its type.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      // `async` without `await` is deliberate here: it turns a synchronous throw into a rejection.
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
    },
  },
  {
    // Jest's asymmetric matchers and pg's untyped rows are `any` by design; a wrong shape fails
    // the assertion itself. Promise rules stay on in tests.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    // Scripts, benchmarks and fixtures run as plain Node ESM: syntax-level rules only.
    files: ['**/*.mjs', '**/*.js'],
    extends: [eslint.configs.recommended],
    languageOptions: { globals: { ...globals.node } },
  },
);
