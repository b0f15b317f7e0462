import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

/**
 * `kysely` is an optional peer dependency: only the `nestjs-pg-tenancy/kysely` entry point may
 * load it, so an app without it installed (CommonJS or ESM) loads and type-checks the others.
 */
describe('the kysely boundary', () => {
  const files = readdirSync('lib', { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join('lib', f));
  const importsOf = (file: string) =>
    [
      ...readFileSync(file, 'utf8').matchAll(
        /\bfrom\s+'([^']+)'|\bimport\s+'([^']+)'|\bimport\(\s*'([^']+)'\s*\)|\brequire\(\s*'([^']+)'\s*\)/g,
      ),
    ].map((m) => m[1] ?? m[2] ?? m[3] ?? m[4]);

  it('finds the sources', () => {
    expect(files).toContain(join('lib', 'kysely', 'index.ts'));
  });

  it('keeps every other file from importing kysely or the kysely entry point', () => {
    const offenders = files
      .filter((file) => !file.startsWith(join('lib', 'kysely')))
      .flatMap((file) =>
        importsOf(file)
          .filter(
            (specifier) =>
              /^kysely(\/|$)/.test(specifier) ||
              relative('lib', join(file, '..', specifier)).startsWith(join('kysely', '')),
          )
          .map((specifier) => `${file}: ${specifier}`),
      );
    expect(offenders).toEqual([]);
  });
});
