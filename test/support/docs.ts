import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The documentation as the tests read it: README.md and the guides in docs/, split into fenced
 * code blocks. Every block is compiled or run by some test (test/unit/docs, the SQL blocks in
 * test/integration/docs, the tutorial in test/package); the only way out is a visible marker, a
 * line `_Not run by the tests: <reason>._` just above the block.
 */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** README.md, then every guide in docs/ (not the generated docs/api). Paths from the root. */
export const DOC_FILES: readonly string[] = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`),
];

/** The tutorial guide: followed from an empty folder by test/package/packed-package.spec.ts. */
export const TUTORIAL = 'docs/tutorial.md';

const texts = new Map<string, string>();

/** A documentation file's text, read once. */
export function docText(file: string): string {
  let text = texts.get(file);
  if (text === undefined) {
    text = readFileSync(join(ROOT, file), 'utf8');
    texts.set(file, text);
  }
  return text;
}

export interface CodeBlock {
  /** The documentation file, e.g. `docs/tenancy.md`. */
  file: string;
  /** Line of the opening fence, 1-based. */
  line: number;
  /** The fence's language (`ts`, `sql`, `sh`, …); `''` when none is given. */
  lang: string;
  /** The text between the fences, with the fence's indentation removed. */
  body: string;
  /**
   * The file the block is, or is an excerpt of, when its first line is a comment naming one
   * (`// src/app.module.ts`, `-- migrations/orders/001_orders.sql`).
   */
  name?: string;
  /** Why the tests do not run it, from a `_Not run by the tests: …._` line just above. */
  exemption?: string;
  /** Where to point a reader at: `docs/tenancy.md:120`. */
  where: string;
}

const FENCE = /^( *)```(\S*)\s*$/;
const NAME_LINE = /^(?:\/\/|--) ([\w.@-]+(?:\/[\w.@-]+)*\.(?:ts|mts|js|mjs|json|sql))$/;
const EXEMPTION = /^_Not run by the tests: (.+)\._$/;

/** The fenced code blocks of a documentation file, in order. */
export function codeBlocks(file: string): CodeBlock[] {
  const lines = docText(file).split('\n');
  const blocks: CodeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]);
    if (!open) continue;
    const indent = open[1].length;
    const body: string[] = [];
    let j = i + 1;
    while (j < lines.length && !(FENCE.test(lines[j]) && /^ *```\s*$/.test(lines[j]))) {
      body.push(lines[j].slice(Math.min(indent, /^ */.exec(lines[j])![0].length)));
      j++;
    }
    if (j === lines.length) throw new Error(`${file}:${i + 1}: a code block is never closed`);
    const above = lines
      .slice(Math.max(0, i - 2), i)
      .map((l) => l.trim())
      .filter(Boolean)
      .at(-1);
    const text = body.length ? `${body.join('\n')}\n` : '';
    blocks.push({
      file,
      line: i + 1,
      lang: open[2],
      body: text,
      name: NAME_LINE.exec(body[0] ?? '')?.[1],
      exemption: above === undefined ? undefined : EXEMPTION.exec(above)?.[1],
      where: `${file}:${i + 1}`,
    });
    i = j;
  }
  return blocks;
}

/** Every code block of README.md and the guides. */
export function allCodeBlocks(): CodeBlock[] {
  return DOC_FILES.flatMap(codeBlocks);
}

/** A block's text without its first line when that line only names the file. */
export function withoutNameLine(block: CodeBlock): string {
  return block.name ? block.body.slice(block.body.indexOf('\n') + 1) : block.body;
}

/** Prose of a file outside its code blocks (for links and headings). */
export function prose(file: string): string {
  return docText(file).replace(/^( *)```[\s\S]*?^\1```\s*$/gm, '');
}

/**
 * Shell lines as a reader types them: `\` continuations joined, comments and blank lines
 * dropped; a leading `$ ` (a prompt, in blocks that show output) is kept.
 */
export function shellLines(body: string): string[] {
  return body
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((line) => stripComment(line).trimEnd())
    .filter((line) => line.trim() !== '');
}

/** A line without its `# comment` (a `#` outside quotes that starts a word). */
function stripComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]))) return line.slice(0, i);
  }
  return line;
}

/** Splits a command line the way a POSIX shell does for single- and double-quoted words. */
function shellWords(text: string): string[] {
  return [...text.matchAll(/'([^']*)'|"((?:\\.|[^"\\])*)"|(\S+)/g)].map(
    (m) => m[1] ?? m[2]?.replace(/\\(.)/g, '$1') ?? m[3],
  );
}

/** A command line's words split at `&&`, with leading `NAME=value` assignments taken off. */
export function shellCommands(line: string): { env: Record<string, string>; words: string[] }[] {
  const commands: { env: Record<string, string>; words: string[] }[] = [];
  let current: string[] = [];
  for (const word of shellWords(line.replace(/^\$ /, ''))) {
    if (word === '&&') {
      commands.push(splitAssignments(current));
      current = [];
    } else current.push(word);
  }
  commands.push(splitAssignments(current));
  return commands;
}

function splitAssignments(words: string[]): { env: Record<string, string>; words: string[] } {
  const env: Record<string, string> = {};
  let i = 0;
  for (; i < words.length; i++) {
    const assignment = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(words[i]);
    if (!assignment) break;
    env[assignment[1]] = assignment[2];
  }
  return { env, words: words.slice(i) };
}

// The tutorial: a sequence of steps test/package/packed-package.spec.ts performs in an empty
// folder, in the order the guide shows them.

/** One thing the reader of the tutorial does. */
export type TutorialStep =
  /** Write a file of the project (a block naming `examples/tutorial/<path>`), whole. */
  | { kind: 'file'; path: string; body: string; where: string }
  /** Run a command in the project folder (`npm …`, `npx tsc`). */
  | { kind: 'command'; words: string[]; where: string }
  /** `mkdir <dir> && cd <dir>`: the project folder. */
  | { kind: 'folder'; dir: string; where: string }
  /** `node dist/main.js`: start the app; it runs until the end of the tutorial. */
  | { kind: 'start'; main: string; where: string }
  /** A `$ …` line and what the guide shows it printing (`…` stands for anything). */
  | { kind: 'call'; call: TutorialCall; where: string };

export type TutorialCall =
  | {
      type: 'curl';
      method: string;
      path: string;
      headers: Record<string, string>;
      body?: string;
      expected: string;
    }
  | { type: 'cli'; args: string[]; expected: string }
  /**
   * `$ KEY=…   # paste the apiKey above`: the reader sets a shell variable from the previous
   * answer's JSON field; `$ export DATABASE_URL=…   # paste the URL the app printed`: from the
   * app's output.
   */
  | { type: 'set'; variable: string; from: { field: string } | { printed: 'URL' } };

/** The tutorial's steps, in order. Throws on a shell line the package test could not perform. */
export function tutorialSteps(): TutorialStep[] {
  const steps: TutorialStep[] = [];
  for (const block of codeBlocks(TUTORIAL)) {
    const where = block.where;
    if (block.name?.startsWith('examples/tutorial/')) {
      const path = block.name.slice('examples/tutorial/'.length);
      steps.push({ kind: 'file', path, body: withoutNameLine(block), where });
      continue;
    }
    if (block.lang !== 'sh') {
      throw new Error(`${where}: a tutorial block is a file of examples/tutorial or a shell block`);
    }
    const raw = block.body.replace(/\\\n\s*/g, ' ').split('\n');
    if (raw.some((l) => l.startsWith('$ '))) {
      steps.push(...sessionSteps(raw, where));
      continue;
    }
    for (const line of shellLines(block.body)) {
      for (const { env, words } of shellCommands(line)) {
        if (Object.keys(env).length) throw new Error(`${where}: ${line}: set no variables here`);
        const [command, ...args] = words;
        if (command === 'mkdir') steps.push({ kind: 'folder', dir: args[0], where });
        else if (command === 'cd') continue;
        else if (command === 'node') steps.push({ kind: 'start', main: args[0], where });
        else if (command === 'npm' || (command === 'npx' && args[0] === 'tsc'))
          steps.push({ kind: 'command', words, where });
        else throw new Error(`${where}: the package test cannot run ${JSON.stringify(line)}`);
      }
    }
  }
  return steps;
}

/** A block of `$ command` lines, each followed by what it prints. */
function sessionSteps(lines: string[], where: string): TutorialStep[] {
  const steps: (TutorialStep & { kind: 'call' })[] = [];
  for (const line of lines.filter(Boolean)) {
    if (!line.startsWith('$ ')) {
      const last = steps.at(-1)?.call;
      if (!last || last.type === 'set') throw new Error(`${where}: output without a command`);
      last.expected += (last.expected ? '\n' : '') + line;
      continue;
    }
    const set = /^\$ (?:export )?(\w+)=… +# paste the (\w+) (above|the app printed.*)$/.exec(line);
    if (set) {
      const from = set[3] === 'above' ? { field: set[2] } : { printed: 'URL' as const };
      if ('printed' in from && set[2] !== 'URL') throw new Error(`${where}: ${line}`);
      steps.push({ kind: 'call', call: { type: 'set', variable: set[1], from }, where });
      continue;
    }
    const words = shellWords(line.slice(2));
    if (words[0] === 'curl') steps.push({ kind: 'call', call: curlCall(words, where), where });
    else if (words[0] === 'npx' && words[1] === 'nestjs-pg-tenancy')
      steps.push({
        kind: 'call',
        call: { type: 'cli', args: words.slice(2), expected: '' },
        where,
      });
    else throw new Error(`${where}: the package test cannot run ${JSON.stringify(line)}`);
  }
  return steps;
}

function curlCall(words: string[], where: string): TutorialCall {
  const call = { type: 'curl' as const, method: 'GET', path: '', headers: {}, expected: '' };
  const headers: Record<string, string> = call.headers;
  let body: string | undefined;
  for (let i = 1; i < words.length; i++) {
    const arg = words[i];
    if (arg === '-X') call.method = words[++i];
    else if (arg === '-H') {
      const [name, ...value] = words[++i].split(':');
      headers[name.trim().toLowerCase()] = value.join(':').trim();
    } else if (arg === '-d') {
      body = words[++i];
      if (call.method === 'GET') call.method = 'POST';
    } else if (/^https?:\/\//.test(arg)) call.path = new URL(arg).pathname;
    else throw new Error(`${where}: curl ${arg} is an option this test does not know`);
  }
  return body === undefined ? call : { ...call, body };
}

/**
 * `text` with `$NAME` replaced by the variables the reader has set; a variable not set is an
 * error (the guide uses it before the line that sets it).
 */
export function substituteVariables(text: string, variables: Record<string, string>): string {
  return text.replace(/\$(\w+)/g, (_, name: string) => {
    if (!(name in variables)) throw new Error(`The tutorial uses $${name} before setting it`);
    return variables[name];
  });
}

/** `expected` as a regular expression over the whole text; `…` stands for anything. */
export function expectedPattern(expected: string): RegExp {
  const escaped = expected
    .split('…')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('[\\s\\S]*');
  return new RegExp(`^${escaped}$`);
}

/**
 * The package.json the tutorial's commands leave behind, as far as the guide decides it: `npm
 * init -y`, then each `npm pkg set`, then the names each `npm install` adds.
 */
export function tutorialManifest(): {
  type?: string;
  scripts: Record<string, string>;
  allowScripts: Record<string, boolean>;
  dependencies: string[];
  devDependencies: string[];
} {
  // What `npm init -y` writes that the tutorial depends on (npm 11: "type": "commonjs").
  const manifest = {
    type: 'commonjs' as string | undefined,
    scripts: {} as Record<string, string>,
    allowScripts: {} as Record<string, boolean>,
    dependencies: [] as string[],
    devDependencies: [] as string[],
  };
  for (const step of tutorialSteps()) {
    if (step.kind !== 'command' || step.words[0] !== 'npm') continue;
    const [, verb, ...args] = step.words;
    if (verb === 'pkg' && args[0] === 'set') {
      const json = args.includes('--json');
      for (const pair of args.slice(1).filter((a) => !a.startsWith('--'))) {
        const [key, ...rest] = pair.split('=');
        const value: unknown = json ? JSON.parse(rest.join('=')) : rest.join('=');
        const [head, ...tail] = key.split('.');
        if (head === 'type') manifest.type = value as string;
        else if (head === 'scripts') manifest.scripts[tail.join('.')] = value as string;
        else if (head === 'allowScripts') manifest.allowScripts[tail.join('.')] = value as boolean;
        else throw new Error(`${step.where}: npm pkg set ${key} is not modelled by this test`);
      }
    } else if (verb === 'install') {
      const names = args
        .filter((a) => !a.startsWith('-'))
        .map((spec) => spec.replace(/(?<=.)@[^@/]*$/, ''));
      (args.includes('--save-dev') ? manifest.devDependencies : manifest.dependencies).push(
        ...names,
      );
    }
  }
  manifest.dependencies.sort();
  manifest.devDependencies.sort();
  return manifest;
}
