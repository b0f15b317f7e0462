import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
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
// Roles belong to the whole server: this file's own, dropped at its end.
const POOLED_ROLE = `pooled_${randomUUID().slice(0, 8)}`;

// The same suite for both tiers: the app's code does not change, only where its tenants live
// (TENANT_TIER). Pooled tenants share the tables of one schema under row-level security.
const TIERS = [
  { tier: 'schema', env: {} },
  { tier: 'pooled', env: { TENANT_TIER: 'pooled', POOLED_ROLE } },
] as const;

afterAll(async () => {
  const admin = new pg.Client(process.env.DATABASE_URL);
  await admin.connect();
  await admin.query(`DROP ROLE IF EXISTS ${POOLED_ROLE}`);
  await admin.end();
});

describe.each(TIERS)('sample app over HTTP, tenants in tier $tier', ({ tier, env: tierEnv }) => {
  let database: TestDatabase;
  let app: SampleApp;
  const admin = { token: ADMIN_TOKEN };
  const appEnv = () => ({ DATABASE_URL: database.url, ADMIN_TOKEN, ...tierEnv });

  beforeAll(async () => {
    await ensureSampleAppBuilt();
    database = await createTestDatabase({ prefix: 'sample_app' });
    app = await startSampleApp({ env: appEnv() });
  });
  afterAll(async () => {
    await stopAllSampleApps();
    await database?.drop();
  });

  const sessions = new WeakMap<SampleApp, Map<string, string>>();
  /** A signed-in user of `tenant` (a session opened through the admin API), for `on`. */
  async function as(tenant: string, on: SampleApp = app): Promise<{ token: string }> {
    let byTenant = sessions.get(on);
    if (!byTenant) sessions.set(on, (byTenant = new Map<string, string>()));
    let token = byTenant.get(tenant);
    if (token === undefined) {
      const res = await on.request<{ token: string }>('POST', `/admin/tenants/${tenant}/sessions`, {
        ...admin,
        body: { email: `e2e@${tenant}.example` },
      });
      expect(res.status).toBe(201);
      token = res.body.token;
      byTenant.set(tenant, token);
    }
    return { token };
  }

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
    const acme = await app.request<Project[]>('GET', '/projects', await as('acme'));
    expect(acme.status).toBe(200);
    expect(acme.body.map((p) => p.name)).toEqual(['Rocket skates', 'Giant magnet']);
    const globex = await app.request<Project[]>('GET', '/projects', await as('globex'));
    expect(globex.body.map((p) => p.name)).toEqual(['Volcano lair', 'Employee handbook']);
    expect(app.output()).toContain(`${app.url}/admin/tenants/acme/sessions`);
    expect(app.output()).toContain(
      `curl -H "authorization: Bearer <session token>" ${app.url}/projects`,
    );
    expect(app.output()).not.toContain(ADMIN_TOKEN);
  });

  it('creates a tenant through the admin API and serves it at once', async () => {
    await createTenant('initech', 'enterprise');
    const created = await app.request<Project>('POST', '/projects', {
      ...(await as('initech')),
      body: { name: 'TPS reports', description: 'New cover sheets' },
    });
    expect(created).toMatchObject({ status: 201, body: { name: 'TPS reports' } });
    // A schema's identity columns start at 1 for each tenant; the pooled tier's tables (and
    // their identities) are shared by its tenants.
    if (tier === 'schema') expect(created.body.id).toBe(1);
    const task = await app.request('POST', `/projects/${created.body.id}/tasks`, {
      ...(await as('initech')),
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
      expect(
        (await app.request('POST', '/projects', { ...(await as(tenant)), body: { name } })).status,
      ).toBe(201);
    }
    const a = await app.request<Project[]>('GET', '/projects', await as('iso_a'));
    const b = await app.request<Project[]>('GET', '/projects', await as('iso_b'));
    expect(a.body.map((p) => p.name)).toEqual(['Alpha', 'Alpha 2']);
    expect(b.body.map((p) => p.name)).toEqual(['Beta']);
    // Another tenant's project id is not found (in a schema tenant, the same id may name a
    // project of its own: iso_b's only project has id 1 there).
    const alpha2 = a.body[1].id;
    expect((await app.request('GET', `/projects/${alpha2}`, await as('iso_b'))).status).toBe(404);

    const member = await app.request<{ id: number }>('POST', '/members', {
      ...(await as('iso_a')),
      body: { email: 'ann@example.com', name: 'Ann' },
    });
    expect(member.status).toBe(201);
    expect((await app.request('GET', '/members', await as('iso_b'))).body).not.toContainEqual(
      expect.objectContaining({ email: 'ann@example.com' }),
    );
    const foreign = await app.request<ErrorBody>('POST', `/projects/${b.body[0].id}/tasks`, {
      ...(await as('iso_b')),
      body: { title: 'Steal', assigneeId: member.body.id },
    });
    expect(foreign.status).toBe(400);
    expect(foreign.body.message).toMatch(/not a member of this tenant/);
  });

  it('answers 401 without a valid session, 400 for a malformed tenant id and for bad bodies', async () => {
    const missing = await app.request<ErrorBody>('GET', '/projects');
    expect(missing).toMatchObject({
      status: 401,
      body: { message: expect.stringContaining('Sign in') },
    });
    // A header naming a tenant is no way in.
    expect((await app.request('GET', '/projects', { tenant: 'acme' })).status).toBe(401);

    const malformed = await app.request<ErrorBody>('POST', '/admin/tenants/Not%20OK!/sessions', {
      ...admin,
      body: { email: 'x@example.com' },
    });
    expect(malformed).toMatchObject({ status: 400, body: { error: 'InvalidTenantIdError' } });
    expect(JSON.stringify(malformed.body)).not.toContain('Not OK!');

    const session = await as('acme');
    const post = (options: { body?: unknown; rawBody?: string; contentType?: string }) =>
      app.request<ErrorBody>('POST', '/projects', { ...session, ...options });
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

    expect((await app.request('GET', '/projects/abc', await as('acme'))).status).toBe(400);
    // Ids are bigint; beyond 2^53 a JSON number cannot hold them exactly.
    expect((await app.request('GET', '/projects/99999999999', await as('acme'))).status).toBe(404);
    expect((await app.request('GET', '/projects/9007199254740993', await as('acme'))).status).toBe(
      400,
    );
    const patch = await app.request<ErrorBody>('PATCH', '/tasks/1', {
      ...(await as('acme')),
      body: {},
    });
    expect(patch.status).toBe(400);
    expect(patch.body.message).toContain('at least one of');
    // Nothing was created by the refused requests.
    expect((await app.request<Project[]>('GET', '/projects', await as('acme'))).body).toHaveLength(
      2,
    );
  });

  it('enters only the tenant of the session, and only while its user is a member', async () => {
    await createTenant('auth_a');
    await createTenant('auth_b');
    await app.request('POST', '/projects', { ...(await as('auth_b')), body: { name: 'Secret' } });
    const session = await as('auth_a');
    // The x-tenant-id header cannot move a session to another tenant.
    const other = await app.request<Project[]>('GET', '/projects', {
      ...session,
      tenant: 'auth_b',
    });
    expect(other).toMatchObject({ status: 200, body: [] });
    // Nor can a token whose tenant claim was edited: its signature no longer matches.
    const [header, payload, signature] = session.token.split('.');
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as object;
    const forged = Buffer.from(JSON.stringify({ ...claims, tenant: 'auth_b' })).toString(
      'base64url',
    );
    expect(
      (await app.request('GET', '/projects', { token: `${header}.${forged}.${signature}` })).status,
    ).toBe(401);
    // Membership ends: the still-valid session is refused by tenancy.authorize, before any SQL.
    const pool = new pg.Pool({ connectionString: database.url, max: 1 });
    try {
      await pool.query(
        `DELETE FROM accounts.memberships m USING accounts.users u
          WHERE m.user_id = u.id AND m.tenant_id = 'auth_a' AND u.email = 'e2e@auth_a.example'`,
      );
    } finally {
      await pool.end();
    }
    const revoked = await app.request<ErrorBody>('GET', '/projects', session);
    expect(revoked).toMatchObject({ status: 403, body: { error: 'TenantAccessDeniedError' } });
  });

  it('answers 403 for a suspended tenant until it is resumed, and 404 for an unknown one', async () => {
    await createTenant('frozen');
    const session = await as('frozen');
    const suspended = await app.request<Tenant>('POST', '/admin/tenants/frozen/suspend', admin);
    expect(suspended).toMatchObject({ status: 200, body: { status: 'suspended' } });
    const refused = await app.request<ErrorBody>('GET', '/projects', session);
    expect(refused).toMatchObject({ status: 403, body: { error: 'TenantSuspendedError' } });

    expect((await app.request('POST', '/admin/tenants/frozen/resume', admin)).status).toBe(200);
    expect((await app.request('GET', '/projects', session)).status).toBe(200);

    const unknown = await app.request<ErrorBody>('POST', '/admin/tenants/nobody_here/sessions', {
      ...admin,
      body: { email: 'x@example.com' },
    });
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
    expect((await app.request('GET', '/projects', { token: ADMIN_TOKEN })).status).toBe(401);
  });

  it('exits 0 on SIGTERM, and a restart on the same database finds the data', async () => {
    const first = await startSampleApp({ env: appEnv() });
    const created = await first.request('POST', '/admin/tenants', {
      ...admin,
      body: { id: 'durable' },
    });
    expect(created.status).toBe(201);
    await first.request('POST', '/projects', {
      ...(await as('durable', first)),
      body: { name: 'Keep me' },
    });

    expect(await first.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(first.output()).toMatch(/SIGTERM received[\s\S]*Application closed/);

    const second = await startSampleApp({ env: appEnv() });
    // Sessions were signed with the first process's key: a new one is needed.
    expect((await second.request('GET', '/projects', await as('durable', first))).status).toBe(401);
    const projects = await second.request<Project[]>(
      'GET',
      '/projects',
      await as('durable', second),
    );
    expect(projects.body.map((p) => p.name)).toEqual(['Keep me']);
    // Not a first start any more: no second round of demo data.
    const acme = await second.request<Project[]>('GET', '/projects', await as('acme', second));
    expect(acme.body).toHaveLength(2);
    expect(second.output()).not.toContain('Created demo tenants');
    expect(await second.stop('SIGTERM')).toEqual({ code: 0, signal: null });
  });

  it(`keeps every tenant's rows where its tier says (${tier})`, async () => {
    const client = new pg.Client(database.url);
    await client.connect();
    try {
      const { rows } = await client.query<{ schemas: number; pooled: boolean }>(
        `SELECT count(*) FILTER (WHERE nspname LIKE 'tenant\\_%')::int AS schemas,
                bool_or(nspname = 'tenancy_pooled') AS pooled FROM pg_namespace`,
      );
      const { schemas, pooled } = rows[0];
      expect(pooled).toBe(tier === 'pooled');
      if (tier === 'schema') expect(schemas).toBeGreaterThan(0);
      else expect(schemas).toBe(0);
    } finally {
      await client.end();
    }
  });
});

describe('sample app over HTTP, lifecycle', () => {
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

    it('on a Ctrl-C to its process group under load: no 500, the server stops after the app, exit 0', async () => {
      const env = { DATABASE_URL: undefined, ADMIN_TOKEN: undefined };
      // detached: the app leads a process group of its own, as a shell's foreground job does.
      const app = await startSampleApp({ env, cwd: workDir, detached: true });
      const pid = Number(/^\d+/.exec(await readFile(join(dataDir, 'postmaster.pid'), 'utf8'))![0]);
      // Tenant routes need a signed session: open one for acme through the admin API.
      const adminToken = /admin token: (\S+)/.exec(app.output())![1];
      const session = await app.request<{ token: string }>('POST', '/admin/tenants/acme/sessions', {
        token: adminToken,
        body: { email: 'load@acme.example' },
      });
      expect(session.status).toBe(201);
      const authorization = `Bearer ${session.body.token}`;
      let running = true;
      const statuses = new Map<number | 'refused', number>();
      let warm!: () => void;
      const warmedUp = new Promise<void>((done) => (warm = done));
      const client = async () => {
        while (running) {
          let status: number | 'refused';
          try {
            status = (await fetch(`${app.url}/projects`, { headers: { authorization } })).status;
          } catch {
            status = 'refused'; // the listener has closed: the app is going away
          }
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
          if ((statuses.get(200) ?? 0) >= 50) warm();
        }
      };
      const clients = Array.from({ length: 16 }, client);
      await warmedUp; // every client has a keep-alive connection with requests in flight
      // What a terminal does on Ctrl-C: SIGINT to every process of the foreground group.
      process.kill(-app.child.pid!, 'SIGINT');
      const exit = await app.exited;
      running = false;
      await Promise.all(clients);

      expect(exit).toEqual({ code: 0, signal: null });
      expect(statuses.get(200)).toBeGreaterThan(0);
      expect([...statuses.keys()].filter((s) => s !== 200 && s !== 503 && s !== 'refused')).toEqual(
        [],
      );
      expect(app.output()).not.toMatch(
        /shutting down\b.*\b500|terminating connection|Internal server error/i,
      );
      expect(alive(pid)).toBe(false);
      await expect(stat(join(dataDir, 'postmaster.pid'))).rejects.toThrow();
    }, 120_000);
  });
});
