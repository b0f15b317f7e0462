// The library's layers, lowest first, and the rules that keep imports running one way.
// Checked by `npm run check` (step `layers`) and by hand with `npx depcruise lib`.
//
// A file may import its own folder and any folder of a LOWER layer; never a higher one, never a
// sibling of the same rank. A lower layer that needs something of a higher one declares a small
// interface and is handed the implementation: core/query's `QuerySink` (the observability
// layer's `QueryObserver` implements it), connection's `SessionTracker` (the drain), the
// registry's `RegistryOptions` (the resolved tenancy options). `lib/index.ts`, `lib/advanced.ts`
// and the other entry points (`*/index.ts`) sit on top.
//
// `testing/` is a side branch: the test-database helpers a user's test suite imports. They need
// nothing of the library but identifiers and errors, so that a test helper can never start a pool
// or a module by accident.

/** Top-level folders of lib/, lowest first. Folders on one line share a rank (no imports between them). */
const LAYERS = [
  ['shared'],
  ['connection'],
  ['core'],
  ['transactions'],
  ['migrations'],
  ['catalog'],
  ['tenancy'],
  ['observability'],
  ['kysely', 'terminus'],
  ['module'],
  ['integrations'],
  ['cli'],
];

/** Parts of `tenancy/`, lowest first: the same rule one level down. `tenancy/*.ts` files other than
 * the options, the service and its composition root (TENANCY_TOP) are the base every part uses. */
const TENANCY_PARTS = [
  ['citus'],
  ['registry'],
  ['routing'],
  ['pooled'],
  ['provisioning'],
  ['transfer', 'fleet'],
];

const rankOf = (layers) =>
  Object.fromEntries(layers.flatMap((names, rank) => names.map((name) => [name, rank])));

/** One `forbidden` rule per folder: what it may not import (higher or same-rank folders). */
function orderRules(layers, prefix, label) {
  const rank = rankOf(layers);
  const all = Object.keys(rank);
  return all.map((name) => {
    const forbidden = all.filter((other) => other !== name && rank[other] >= rank[name]);
    return {
      name: `${label}-${name}`,
      comment: `${prefix}${name}/ may import only lower ${label}s (${layers.map((l) => l.join('|')).join(' < ')})`,
      severity: 'error',
      from: { path: `^${prefix}${name}/` },
      to: { path: `^${prefix}(${forbidden.join('|')})/` },
    };
  }).filter((rule) => !rule.to.path.endsWith('()/'));
}

const TENANCY_TOP = '^lib/tenancy/(tenancy-options|tenant\\.service|tenancy-root)\\.ts$';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'Import cycles hide the real order of a layer: break them with a small interface.',
      severity: 'error',
      from: { path: '^lib/' },
      to: { circular: true },
    },
    ...orderRules(LAYERS, 'lib/', 'layer'),
    ...orderRules(TENANCY_PARTS, 'lib/tenancy/', 'tenancy-part'),
    {
      name: 'tenancy-base-below-parts',
      comment: 'tenancy/*.ts (states, errors, locks) is the base the parts build on.',
      severity: 'error',
      from: { path: '^lib/tenancy/[^/]+\\.ts$', pathNot: `${TENANCY_TOP}|^lib/tenancy/index\\.ts$` },
      to: { path: `^lib/tenancy/(${TENANCY_PARTS.flat().join('|')})/|${TENANCY_TOP}` },
    },
    {
      name: 'tenancy-parts-below-service',
      comment: 'The options, the tenant service and its composition root compose the parts; no part imports them.',
      severity: 'error',
      from: { path: '^lib/tenancy/[^/]+/' },
      to: { path: TENANCY_TOP },
    },
    {
      name: 'testing-stands-apart',
      comment: 'testing/ may use shared/ only (see the header).',
      severity: 'error',
      from: { path: '^lib/testing/' },
      to: { path: '^lib/(?!shared/|testing/)' },
    },
    {
      name: 'nothing-imports-an-entry',
      comment: 'Entry points (index.ts, cli/bin.ts) re-export; library files import the file itself.',
      severity: 'error',
      from: { path: '^lib/' },
      to: { path: '^lib/(index|advanced|[^/]+/index|cli/bin)\\.ts$' },
    },
    {
      name: 'kysely-only-in-kysely',
      comment: 'kysely is an optional peer: only lib/kysely/ may load it.',
      severity: 'error',
      from: { path: '^lib/', pathNot: '^lib/kysely/' },
      to: { path: 'node_modules/kysely/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    includeOnly: '^lib/|node_modules/kysely/',
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.build.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js'],
    },
  },
};
