import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '../../lib/testing/index.js';
import {
  alive,
  ensureSampleAppBuilt,
  startSampleApp,
  stopAllSampleApps,
  stopStrayPostgres,
  type SampleApp,
} from '../support/sample-app.js';

interface Project {
  id: number;
  name: string;
}
interface Tenant {
  id: string;
  plan: string;
  status: string;
}
interface ErrorBody {
  statusCode: number;
  error: string;
  message: string;
}

const ADMIN_TOKEN = 'e2e-admin-token-0123456789';

describe('sample app: a child process over HTTP', () => {
  let database: TestDatabase;
  let app: SampleApp;
  const admin = { token: ADMIN_TOKEN };

  beforeAll(async () => {
    await ensureSampleAppBuilt();
    database = await createTestDatabase({ prefix: 'sample_app' });
    app = await startSampleApp({ env: { DATABASE_URL: database.url, ADMIN_TOKEN } });
  });
  afterAll(async () => {
    await stopAllSampleApps();
    await database?.drop();
  });

  async function createTenant(id: string, plan = 'team') {
    const res = await app.request<Tenant>('POST', '/admin/tenants', {
      ...admin,
      body: { id, plan },
    });
    expect(res).toMatchObject({ status: 201, body: { id, plan, status: 'active' } });
  }

  it('creates the demo tenants on first start and answers its health check', async () => {
    expect(await app.request('GET', '/health')).toMatchObject({
      status: 200,
      body: { status: 'ok', details: { database: { status: 'up' } } },
    });
    const acme = await app.request<Project[]>('GET', '/projects', { tenant: 'acme' });
    expect(acme.status).toBe(200);
    expect(acme.body.map((p) => p.name)).toEqual(['Rocket skates', 'Giant magnet']);
    const globex = await app.request<Project[]>('GET', '/projects', { tenant: 'globex' });
    expect(globex.body.map((p) => p.name)).toEqual(['Volcano lair', 'Employee handbook']);
    expect(app.output()).toContain(`curl -H 'x-tenant-id: acme' ${app.url}/projects`);
    expect(app.output()).not.toContain(ADMIN_TOKEN);
  });

  it('creates a tenant through the admin API and serves it at once', async () => {
    await createTenant('initech', 'enterprise');
    const created = await app.request<Project>('POST', '/projects', {
      tenant: 'initech',
      body: { name: 'TPS reports', description: 'New cover sheets' },
    });
    expect(created).toMatchObject({ status: 201, body: { id: 1, name: 'TPS reports' } });
    const task = await app.request('POST', `/projects/${created.body.id}/tasks`, {
      tenant: 'initech',
      body: { title: 'Find the stapler' },
    });
    expect(task).toMatchObject({ status: 201, body: { title: 'Find the stapler', done: false } });

    const listed = await app.request<Tenant[]>('GET', '/admin/tenants', admin);
    expect(listed.body).toContainEqual(
      expect.objectContaining({ id: 'initech', plan: 'enterprise', status: 'active' }),
    );
    const again = await app.request<ErrorBody>('POST', '/admin/tenants', {
      ...admin,
      body: { id: 'initech' },
    });
    expect(again).toMatchObject({ status: 409, body: { error: 'TenantAlreadyExistsError' } });
  });

  it('never shows one tenant the projects, tasks or members of another', async () => {
    await createTenant('iso_a');
    await createTenant('iso_b');
    for (const [tenant, name] of [
      ['iso_a', 'Alpha'],
      ['iso_b', 'Beta'],
      ['iso_a', 'Alpha 2'],
    ] as const) {
      expect((await app.request('POST', '/projects', { tenant, body: { name } })).status).toBe(201);
    }
    const a = await app.request<Project[]>('GET', '/projects', { tenant: 'iso_a' });
    const b = await app.request<Project[]>('GET', '/projects', { tenant: 'iso_b' });
    expect(a.body.map((p) => p.name)).toEqual(['Alpha', 'Alpha 2']);
    expect(b.body.map((p) => p.name)).toEqual(['Beta']);
    // The same id names a different project in each tenant's schema.
    expect((await app.request('GET', '/projects/2', { tenant: 'iso_b' })).status).toBe(404);

    const member = await app.request<{ id: number }>('POST', '/members', {
      tenant: 'iso_a',
      body: { email: 'ann@example.com', name: 'Ann' },
    });
    expect(member.status).toBe(201);
    expect((await app.request('GET', '/members', { tenant: 'iso_b' })).body).toEqual([]);
    const foreign = await app.request<ErrorBody>('POST', '/projects/1/tasks', {
      tenant: 'iso_b',
      body: { title: 'Steal', assigneeId: member.body.id },
    });
    expect(foreign.status).toBe(400);
    expect(foreign.body.message).toMatch(/not a member of this tenant/);
  });

  it('answers 400 for a missing or malformed tenant id and for bad bodies', async () => {
    const missing = await app.request<ErrorBody>('GET', '/projects');
    expect(missing).toMatchObject({ status: 400, body: { error: 'TenantRequiredError' } });
    expect(missing.body.message).toContain('x-tenant-id');

    const malformed = await app.request<ErrorBody>('GET', '/projects', { tenant: 'Not OK!' });
    expect(malformed).toMatchObject({ status: 400, body: { error: 'InvalidTenantIdError' } });
    expect(JSON.stringify(malformed.body)).not.toContain('Not OK!');

    const post = (options: { body?: unknown; rawBody?: string; contentType?: string }) =>
      app.request<ErrorBody>('POST', '/projects', { tenant: 'acme', ...options });
    const empty = await post({ body: {} });
    expect(empty.status).toBe(400);
    expect(empty.body.message).toContain('"name" must be a non-empty string');
    expect((await post({ body: { name: 42 } })).status).toBe(400);
    expect((await post({ body: { name: '   ' } })).status).toBe(400);
    expect((await post({ body: { name: 'x'.repeat(201) } })).status).toBe(400);
    const typo = await post({ body: { name: 'Ok', descripton: 'typo' } });
    expect(typo.status).toBe(400);
    expect(typo.body.message).toContain('allowed fields are name, description');
    const array = await post({ body: ['name'] });
    expect(array.status).toBe(400);
    expect(array.body.message).toContain('JSON object');
    const broken = await post({ rawBody: '{"name":', contentType: 'application/json' });
    expect(broken.status).toBe(400);

    expect((await app.request('GET', '/projects/abc', { tenant: 'acme' })).status).toBe(400);
    expect((await app.request('GET', '/projects/99999999999', { tenant: 'acme' })).status).toBe(
      400,
    );
    const patch = await app.request<ErrorBody>('PATCH', '/tasks/1', { tenant: 'acme', body: {} });
    expect(patch.status).toBe(400);
    expect(patch.body.message).toContain('at least one of');
    // Nothing was created by the refused requests.
    expect(
      (await app.request<Project[]>('GET', '/projects', { tenant: 'acme' })).body,
    ).toHaveLength(2);
  });

  it('answers 403 for a suspended tenant until it is resumed, and 404 for an unknown one', async () => {
    await createTenant('frozen');
    const suspended = await app.request<Tenant>('POST', '/admin/tenants/frozen/suspend', admin);
    expect(suspended).toMatchObject({ status: 200, body: { status: 'suspended' } });
    const refused = await app.request<ErrorBody>('GET', '/projects', { tenant: 'frozen' });
    expect(refused).toMatchObject({ status: 403, body: { error: 'TenantSuspendedError' } });

    expect((await app.request('POST', '/admin/tenants/frozen/resume', admin)).status).toBe(200);
    expect((await app.request('GET', '/projects', { tenant: 'frozen' })).status).toBe(200);

    const unknown = await app.request<ErrorBody>('GET', '/projects', { tenant: 'nobody_here' });
    expect(unknown).toMatchObject({ status: 404, body: { error: 'TenantNotFoundError' } });
    const suspendUnknown = await app.request('POST', '/admin/tenants/nobody_here/suspend', admin);
    expect(suspendUnknown.status).toBe(404);
  });

  it('refuses the admin API without the right bearer token', async () => {
    for (const token of [undefined, 'wrong-token-0123456789', `${ADMIN_TOKEN}x`]) {
      const res = await app.request<ErrorBody>('GET', '/admin/tenants', { token });
      expect(res.status).toBe(401);
    }
    const create = await app.request('POST', '/admin/tenants', {
      token: 'wrong-token-0123456789',
      body: { id: 'intruder' },
    });
    expect(create.status).toBe(401);
    expect((await app.request('GET', '/projects', { tenant: 'intruder' })).status).toBe(404);
  });

  it('exits 0 on SIGTERM, and a restart on the same database finds the data', async () => {
    const first = await startSampleApp({ env: { DATABASE_URL: database.url, ADMIN_TOKEN } });
    const created = await first.request('POST', '/admin/tenants', {
      ...admin,
      body: { id: 'durable' },
    });
    expect(created.status).toBe(201);
    await first.request('POST', '/projects', { tenant: 'durable', body: { name: 'Keep me' } });

    expect(await first.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(first.output()).toMatch(/SIGTERM received[\s\S]*Application closed/);

    const second = await startSampleApp({ env: { DATABASE_URL: database.url, ADMIN_TOKEN } });
    const projects = await second.request<Project[]>('GET', '/projects', { tenant: 'durable' });
    expect(projects.body.map((p) => p.name)).toEqual(['Keep me']);
    // Not a first start any more: no second round of demo data.
    const acme = await second.request<Project[]>('GET', '/projects', { tenant: 'acme' });
    expect(acme.body).toHaveLength(2);
    expect(second.output()).not.toContain('Created demo tenants');
    expect(await second.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });

  describe('without DATABASE_URL', () => {
    let workDir: string;
    let dataDir: string;

    beforeAll(async () => {
      workDir = await mkdtemp(join(tmpdir(), 'sample-app-'));
      // As root, the embedded server runs as the postgres user, which must reach its data.
      await chmod(workDir, 0o755);
      dataDir = join(workDir, '.data', 'postgres');
    });
    afterAll(async () => {
      await stopAllSampleApps();
      await stopStrayPostgres(dataDir);
      await rm(workDir, { recursive: true, force: true });
    });

    it('runs on an embedded PostgreSQL in .data/postgres, stops it after the app, and keeps the data', async () => {
      const env = { DATABASE_URL: undefined, ADMIN_TOKEN: undefined };
      const first = await startSampleApp({ env, cwd: workDir, startTimeoutMs: 60_000 });
      expect(first.output()).toContain('embedded PostgreSQL');
      const token = /admin token: (\S+)/.exec(first.output())![1];
      expect(first.output()).toContain(`Bearer ${token}`);
      expect(
        (await first.request('POST', '/admin/tenants', { token, body: { id: 'kept' } })).status,
      ).toBe(201);
      const pid = Number(/^\d+/.exec(await readFile(join(dataDir, 'postmaster.pid'), 'utf8'))![0]);
      expect(alive(pid)).toBe(true);

      expect(await first.stop('SIGTERM')).toEqual({ code: 0, signal: null });
      // The app closed first (no connection was cut by the server while it did), then the
      // server, which is gone by the time the process exited.
      const shutdown = /SIGTERM received([\s\S]*)Application closed/.exec(first.output());
      expect(shutdown?.[1]).not.toMatch(/terminating connection|lost its connection/);
      expect(alive(pid)).toBe(false);
      await expect(stat(join(dataDir, 'postmaster.pid'))).rejects.toThrow();

      const second = await startSampleApp({ env, cwd: workDir, startTimeoutMs: 60_000 });
      const secondToken = /admin token: (\S+)/.exec(second.output())![1];
      expect(secondToken).not.toBe(token);
      const tenants = await second.request<Tenant[]>('GET', '/admin/tenants', {
        token: secondToken,
      });
      expect(tenants.body.map((t) => t.id)).toEqual(['acme', 'globex', 'kept']);
      expect(await second.stop('SIGINT')).toEqual({ code: 0, signal: null });
    }, 90_000);
  });
});
