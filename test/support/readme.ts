import { readFileSync } from 'node:fs';

/** README.md, read once. */
export const readme = readFileSync('README.md', 'utf8');

const TUTORIAL = /## Five-minute tutorial[\s\S]*?(?=\n## )/.exec(readme)?.[0] ?? '';

/** Code blocks whose first line is a comment naming a file (`// path` or `-- path`). */
export function namedBlocks(prefix: string): { file: string; body: string }[] {
  const pattern = /```\w*\n(?:\/\/|--) (\S+)\n([\s\S]*?)```/g;
  return [...readme.matchAll(pattern)]
    .filter((m) => m[1].startsWith(prefix))
    .map((m) => ({ file: m[1], body: m[2] }));
}

/** The tutorial's install commands (step 1), one array of arguments after `npm` per line. */
export function tutorialInstallCommands(): string[][] {
  const block = /\*\*1\. Install\.\*\*[\s\S]*?```sh\n([\s\S]*?)```/.exec(TUTORIAL)?.[1] ?? '';
  return block
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim())
    .filter((line) => line.startsWith('npm '))
    .map((line) => line.split(/\s+/).slice(1));
}

export interface ReadmeCall {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
  /** What the README shows; `…` stands for anything. */
  expected: string;
  /**
   * Shell variables the reader sets from this call's JSON answer, by a line
   * `$ KEY=…   # paste the apiKey above` under it: variable name → field of the answer.
   */
  saves: Record<string, string>;
}

/** The `$ curl …` calls of the tutorial's "Try it" step, with the output shown under each. */
export function tutorialCalls(): ReadmeCall[] {
  const block = /\*\*8\. Try it\.\*\*[\s\S]*?```sh\n([\s\S]*?)```/.exec(TUTORIAL)?.[1] ?? '';
  const calls: ReadmeCall[] = [];
  for (const line of block.split('\n').filter(Boolean)) {
    const assignment = /^\$ (\w+)=… +# paste the (\w+) above$/.exec(line);
    if (assignment) {
      calls.at(-1)!.saves[assignment[1]] = assignment[2];
      continue;
    }
    if (!line.startsWith('$ curl ')) {
      calls.at(-1)!.expected += (calls.at(-1)!.expected ? '\n' : '') + line;
      continue;
    }
    const args = shellWords(line.slice('$ curl '.length));
    const call: ReadmeCall = { method: 'GET', path: '', headers: {}, expected: '', saves: {} };
    for (let i = 0; i < args.length; i++) {
      const arg = args[i];
      if (arg === '-X') call.method = args[++i]!;
      else if (arg === '-H') {
        const [name, ...value] = args[++i].split(':');
        call.headers[name.trim().toLowerCase()] = value.join(':').trim();
      } else if (arg === '-d') {
        call.body = args[++i]!;
        if (call.method === 'GET') call.method = 'POST';
      } else if (/^https?:\/\//.test(arg)) call.path = new URL(arg).pathname;
      else throw new Error(`The README's curl line uses ${arg}, which this test does not know`);
    }
    calls.push(call);
  }
  return calls;
}

/**
 * `text` with `$NAME` replaced by the variables the reader has set; a variable not set is an
 * error (the README uses it before the line that sets it).
 */
export function substituteVariables(text: string, variables: Record<string, string>): string {
  return text.replace(/\$(\w+)/g, (_, name: string) => {
    if (!(name in variables)) throw new Error(`The README uses $${name} before setting it`);
    return variables[name];
  });
}

/** `expected` as a regular expression over the whole body. */
export function expectedPattern(expected: string): RegExp {
  const escaped = expected
    .split('…')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('[\\s\\S]*');
  return new RegExp(`^${escaped}$`);
}

/** Splits a command line the way a POSIX shell does for single- and double-quoted words. */
function shellWords(text: string): string[] {
  return [...text.matchAll(/'([^']*)'|"((?:\\.|[^"\\])*)"|(\S+)/g)].map(
    (m) => m[1] ?? m[2]?.replace(/\\(.)/g, '$1') ?? m[3],
  );
}
