import { readFileSync } from 'node:fs';

/**
 * README code blocks that name a sample-app file must match that file (which the e2e suite
 * runs), so the tutorial cannot drift from working code.
 */
const readme = readFileSync('README.md', 'utf8');
const blocks = [...readme.matchAll(/```ts\n\/\/ (sample-app\/[^\n]+)\n([\s\S]*?)```/g)].map(
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
    expect(blocks.length).toBeGreaterThanOrEqual(8);
  });

  it.each(blocks.map((b) => [b.file, b] as const))(
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
