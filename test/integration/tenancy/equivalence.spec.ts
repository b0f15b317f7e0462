// The equivalence harness: every way a tenant comes into being (replay, template copy, spare
// rename, clone, export → import, rename, and rename followed by re-creating the old id) must
// give the tenant replay gives, for a corpus of migration files written the way users write
// them (test/fixtures/equivalence/). Compared: the catalog (every definition, proconfig, ACLs),
// rows, sequence state, and behaviour — every function called, every trigger fired, and in which
// schema each write lands.
import { Test, type TestingModule } from '@nestjs/testing';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { DatabaseModule, TenantService, type TenancyOptions } from '../../../lib/index.js';
import { adminPool, useTestDatabase } from '../../support/database.js';
import {
  behaviour,
  catalog,
  dataChecksums,
  readFileSet,
  sequenceState,
  type Behaviour,
  type FileSet,
} from '../../support/equivalence.js';
import { useMigrationFolders } from '../../support/migrations.js';
import { dumpSchema, pgDumpFor, PG_DUMP_REQUIRED } from '../../support/pg-dump.js';

const CORPUS = join(import.meta.dirname, '../../fixtures/equivalence');

/**
 * The file sets: `core` is what the template copies; `search-path` adds functions hardened with
 * `SET search_path`; `full` adds what the template cannot copy (enums, domains, partitions, RLS,
 * rules, default privileges, rows naming the schema), for which every create must replay, with a
 * warning.
 */
const SETS = {
  core: ['core', 'late'],
  'search-path': ['core', 'search-path', 'late'],
  full: ['core', 'search-path', 'full', 'late'],
} as const;
type SetName = keyof typeof SETS;

/** The tenant each path makes, compared with `replayed`. */
const PATHS = {
  template: 'copied',
  spare: 'spared',
  clone: 'cloned',
  import: 'imported',
  rename: 'moved',
  'rename, then re-create the old id': 'moving',
} as const;
type PathName = keyof typeof PATHS;
type Aspect =
  'fast path' | 'catalog' | 'pg_dump' | 'rows' | 'sequences' | 'history' | 'behaviour' | 'writes';

const REGISTRY = 'reg_eq';

describe.each(Object.keys(SETS) as SetName[])(
  'equivalence of provisioning paths: %s files',
  (set) => {
    const database = useTestDatabase();
    const folder = useMigrationFolders();
    const apps: TestingModule[] = [];
    const warnings: string[] = [];
    let admin: pg.Pool;
    let exportDir: string;
    let corpus: FileSet;
    let spareOids: string[] = [];
    /** The replayed tenant after its behaviour run, and its clone and export → import then. */
    const used = new Map<string, { catalog: string[]; rows: string[]; sequences: string[] }>();
    const refused = new Map<string, Error>();
    let serverVersion = 0;
    /** Per tenant id: its state before and after the behaviour run, and that run. */
    const state = new Map<
      string,
      {
        catalog: string[];
        rows: string[];
        sequences: string[];
        history: string[];
        behaviour?: Behaviour;
        rowsAfter?: string[];
        sequencesAfter?: string[];
      }
    >();

    async function boot(migrations: string, tenancy: TenancyOptions): Promise<TenantService> {
      const app = await Test.createTestingModule({
        imports: [
          DatabaseModule.forRoot({
            connection: database.current.url,
            pool: { max: 3, applicationName: 'equivalence-spec' },
            tenancy: { interceptor: false, registrySchema: REGISTRY, migrations, ...tenancy },
          }),
        ],
      })
        .setLogger({
          log: () => undefined,
          error: () => undefined,
          warn: (message: unknown) => void warnings.push(String(message)),
        })
        .compile();
      apps.push(app);
      await app.init();
      return app.get(TenantService);
    }

    async function withClient<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
      const client = await admin.connect();
      try {
        return await fn(client);
      } finally {
        client.release();
      }
    }

    /**
     * Rows are copied (clone, import) or kept (rename) as they are: a seed row that names the
     * schema it was written in still names it, which is the user's data, not a difference. Only
     * rows and results are read with that name normalised; writes never are.
     */
    const sourceOf = (id: string): string[] =>
      id === 'cloned' || id === 'imported'
        ? ['tenant_replayed']
        : id === 'moved'
          ? ['tenant_moving']
          : [];

    beforeAll(async () => {
      admin = adminPool(database.current.url);
      exportDir = join(await mkdtemp(join(tmpdir(), 'pgt-equivalence-')), 'export');
      corpus = await readFileSet(CORPUS, SETS[set]);
      const migrations = await folder(corpus.files);

      const replaying = await boot(migrations, { template: false });
      await replaying.create('replayed');
      await replaying.clone('replayed', 'cloned');
      await replaying.export('replayed', exportDir);
      await replaying.import(exportDir, { id: 'imported' });
      await replaying.create('moving');
      await replaying.rename('moving', 'moved');
      await replaying.create('moving');

      const copying = await boot(migrations, { templateSpares: 0 });
      await copying.create('copied');
      const sparing = await boot(migrations, { templateSpares: 1 });
      spareOids = (
        await admin.query<{ oid: string }>(
          `SELECT n.oid::text FROM ${REGISTRY}.tenant_template_spares s
           JOIN pg_namespace n ON n.nspname = s.schema_name`,
        )
      ).rows.map((r) => r.oid);
      await sparing.create('spared');

      const ids = ['replayed', ...Object.values(PATHS)];
      await withClient(async (client) => {
        for (const id of ids) {
          const schema = `tenant_${id}`;
          const history = await client.query<{ line: string }>(
            `SELECT version || ' ' || name || ' ' || checksum AS line FROM "${schema}".schema_migrations ORDER BY version`,
          );
          state.set(id, {
            catalog: await catalog(client, schema),
            rows: await dataChecksums(client, schema, [schema, ...sourceOf(id)]),
            sequences: await sequenceState(client, schema),
            history: history.rows.map((r) => r.line),
          });
        }
        // Replay first: the others are compared with what it did. Each on a new connection:
        // pg_stat_xact_user_tables also counts a backend's earlier writes not yet flushed.
        for (const id of ids) {
          const schema = `tenant_${id}`;
          const entry = state.get(id)!;
          const fresh = new pg.Client({ connectionString: database.current.url });
          await fresh.connect();
          try {
            entry.behaviour = await behaviour(fresh, schema, corpus.statements, sourceOf(id));
          } finally {
            await fresh.end();
          }
          entry.rowsAfter = await dataChecksums(client, schema, [schema, ...sourceOf(id)]);
          entry.sequencesAfter = await sequenceState(client, schema);
        }
      });
      // Copies of the replayed tenant once used: its rows and sequence positions as they are now.
      // (Where a copy fails, its test checks the failure.)
      await replaying
        .clone('replayed', 'cloned_used')
        .catch((err: Error) => refused.set('cloned_used', err));
      await replaying.export('replayed', `${exportDir}_used`);
      await replaying
        .import(`${exportDir}_used`, { id: 'imported_used' })
        .catch((err: Error) => refused.set('imported_used', err));
      serverVersion = Number(
        (await admin.query<{ v: string }>("SELECT current_setting('server_version_num') AS v"))
          .rows[0].v,
      );
      await withClient(async (client) => {
        for (const id of ['replayed', 'cloned_used', 'imported_used']) {
          if (refused.has(id)) continue;
          const schema = `tenant_${id}`;
          used.set(id, {
            catalog: await catalog(client, schema),
            rows: await dataChecksums(client, schema, [schema, 'tenant_replayed']), // rows copied
            sequences: await sequenceState(client, schema),
          });
        }
      });
    });

    afterAll(async () => {
      await Promise.all(apps.splice(0).map((app) => app.close()));
      await rm(join(exportDir, '..'), { recursive: true, force: true });
      await admin?.end();
    });

    const replayed = () => state.get('replayed')!;

    it('exercises every function and trigger of the schema', async () => {
      // Trigger functions run through their triggers, and functions in a default, check, index
      // or generated column through the writes to their table; every other one is called by name.
      const { rows } = await admin.query<{ name: string; implicit: boolean }>(
        `SELECT p.proname AS name,
                p.prorettype = 'pg_catalog.trigger'::regtype OR EXISTS (
                  SELECT 1 FROM pg_depend d
                   WHERE d.refclassid = 'pg_proc'::regclass AND d.refobjid = p.oid
                     AND d.classid IN ('pg_attrdef'::regclass, 'pg_constraint'::regclass, 'pg_class'::regclass)
                ) AS implicit
           FROM pg_proc p WHERE p.pronamespace = 'tenant_replayed'::regnamespace`,
      );
      const text = corpus.statements.join('\n');
      const uncalled = rows.filter((r) => !r.implicit && !text.includes(`{{schema}}.${r.name}(`));
      expect(uncalled).toEqual([]);
      const triggers = await admin.query<{ tbl: string }>(
        `SELECT DISTINCT c.relname AS tbl FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        WHERE c.relnamespace = 'tenant_replayed'::regnamespace AND NOT t.tgisinternal`,
      );
      const written = replayed().behaviour!.writes.map((w) => w.split(' ')[0]);
      for (const { tbl } of triggers.rows) expect(written).toContain(`<schema>.${tbl}`);
      // The replayed tenant's own calls all succeeded and wrote only into its own schema.
      expect(replayed().behaviour!.results.filter((r) => r.startsWith('error'))).toEqual([]);
      expect(replayed().behaviour!.writes.every((w) => w.startsWith('<schema>.'))).toBe(true);
    });

    if (set === 'full') {
      it('creates by replay from the template, with a warning naming what it cannot copy', () => {
        expect(warnings.join('\n')).toMatch(/cannot be cloned exactly \(.+\)/);
      });
    } else {
      check('template', 'fast path', () => {
        expect(warnings).toEqual([]);
      });
      check('spare', 'fast path', async () => {
        const { rows } = await admin.query<{ oid: string }>(
          "SELECT oid::text FROM pg_namespace WHERE nspname = 'tenant_spared'",
        );
        expect(spareOids).toContain(rows[0].oid);
      });
    }

    for (const path of Object.keys(PATHS) as PathName[]) {
      const id = PATHS[path];
      const mine = () => state.get(id)!;
      check(path, 'catalog', () => expect(mine().catalog).toEqual(replayed().catalog));
      // pg_dump must be of the server's version: only the PostgreSQL 15 run has one (and sets
      // PG_DUMP_REQUIRED); elsewhere these checks are not defined rather than passing empty.
      if (PG_DUMP_REQUIRED) {
        check(path, 'pg_dump', async () => {
          const binary = (await pgDumpFor(admin))!;
          const url = database.current.url;
          expect(await dumpSchema(binary, url, `tenant_${id}`)).toEqual(
            await dumpSchema(binary, url, 'tenant_replayed'),
          );
        });
      }
      check(path, 'rows', () => expect(mine().rows).toEqual(replayed().rows));
      check(path, 'sequences', () => expect(mine().sequences).toEqual(replayed().sequences));
      check(path, 'history', () => expect(mine().history).toEqual(replayed().history));
      check(path, 'behaviour', () => {
        expect(mine().behaviour!.results).toEqual(replayed().behaviour!.results);
        expect(mine().rowsAfter).toEqual(replayed().rowsAfter);
        expect(mine().sequencesAfter).toEqual(replayed().sequencesAfter);
      });
      check(path, 'writes', () =>
        expect(mine().behaviour!.writes).toEqual(replayed().behaviour!.writes),
      );
    }

    for (const id of ['cloned_used', 'imported_used']) {
      const path = id === 'cloned_used' ? 'clone' : 'import';
      it(`${path} of a used tenant: catalog, rows and sequences equal to the source`, () => {
        // The used full tenant's rows hold an enum value its migrations add with ALTER TYPE …
        // ADD VALUE: PostgreSQL 16 and older refuse it in the copying transaction, which the
        // library says, naming what to do.
        if (set === 'full' && serverVersion < 170000) {
          expect(refused.get(id)?.message).toMatch(/ADD VALUE.*PostgreSQL 17 or later/);
          return;
        }
        expect(refused.get(id)).toBeUndefined();
        const copy = used.get(id)!;
        const source = used.get('replayed')!;
        expect(copy.catalog).toEqual(source.catalog);
        expect(copy.rows).toEqual(source.rows);
        expect(copy.sequences).toEqual(source.sequences);
      });
    }

    /** One assertion about one path. */
    function check(path: PathName, aspect: Aspect, fn: () => unknown): void {
      it(`${path}: ${aspect} equal to replay`, async () => {
        await fn();
      });
    }
  },
);
