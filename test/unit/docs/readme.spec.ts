import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  expectedPattern,
  namedBlocks,
  readme,
  substituteVariables,
  tutorialCalls,
  tutorialInstallCommands,
} from '../../support/readme.js';

/**
 * README code blocks that name a sample-app file are excerpts of it (in order, `// …` for lines
 * left out); blocks that name a file of the tutorial project are that whole file. The e2e and
 * package suites run both projects, so the README cannot drift from working code.
 */
const excerpts = [...readme.matchAll(/```ts\n\/\/ (sample-app\/[^\n]+)\n([\s\S]*?)```/g)].map(
  (m) => ({
    file: m[1].trim(),
    lines: m[2]
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('// …')),
  }),
);

describe('README code blocks copied from the sample app', () => {
  it('finds the blocks', () => {
    expect(excerpts.length).toBeGreaterThanOrEqual(3);
  });

  it.each(excerpts.map((b) => [b.file, b] as const))(
    '%s matches the file, in order',
    (_file, block) => {
      const source = readFileSync(block.file, 'utf8')
        .split('\n')
        .map((l) => l.trim());
      let at = 0;
      for (const line of block.lines) {
        const found = source.indexOf(line, at);
        if (found === -1)
          throw new Error(`${block.file} has no line ${JSON.stringify(line)} after line ${at}`);
        at = found + 1;
      }
    },
  );
});

describe('the README tutorial', () => {
  const blocks = namedBlocks('examples/tutorial/');

  it('shows every source file and migration of examples/tutorial, whole', () => {
    const root = 'examples/tutorial';
    const files = [
      'tsconfig.json',
      ...readdirSync(join(root, 'src'), { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('.ts'))
        .map((f) => `src/${f}`),
      ...readdirSync(join(root, 'migrations', 'tenant')).map((f) => `migrations/tenant/${f}`),
    ].map((f) => `${root}/${f}`);
    expect(blocks.map((b) => b.file).sort()).toEqual(files.sort());
  });

  it.each(blocks.map((b) => [b.file, b] as const))('%s equals the file', (file, block) => {
    expect(block.body).toBe(readFileSync(file, 'utf8'));
  });

  it("installs every dependency of the tutorial's package.json", () => {
    const manifest = JSON.parse(readFileSync('examples/tutorial/package.json', 'utf8')) as {
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
    };
    const commands = tutorialInstallCommands();
    const named = (dev: boolean) =>
      commands
        .filter((args) => args[0] === 'install' && args.includes('--save-dev') === dev)
        .flatMap((args) => args.slice(1).filter((a) => !a.startsWith('-')))
        .map((spec) => spec.replace(/(?<=.)@[^@]*$/, ''))
        .sort();
    expect(named(false)).toEqual(Object.keys(manifest.dependencies).sort());
    expect(named(true)).toEqual(Object.keys(manifest.devDependencies).sort());
  });

  it('shows calls with their answers', () => {
    const calls = tutorialCalls();
    expect(calls.length).toBeGreaterThanOrEqual(5);
    for (const call of calls) {
      expect(call.path).toMatch(/^\//);
      expect(expectedPattern(call.expected).source.length).toBeGreaterThan(3);
    }
  });

  it('sets every shell variable before a call uses it', () => {
    const variables: Record<string, string> = {};
    for (const call of tutorialCalls()) {
      for (const value of Object.values(call.headers)) substituteVariables(value, variables);
      for (const variable of Object.keys(call.saves)) variables[variable] = 'pasted';
    }
    expect(Object.keys(variables)).toEqual(['KEY']);
  });
});
