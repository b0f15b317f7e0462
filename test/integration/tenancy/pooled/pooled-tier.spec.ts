// The pooled tier from TenantService: a tenant placed in the shared tables is served by the same
// calls as a schema tenant, held to its rows by PostgreSQL, and dropped row by row.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { PooledAdaptationError } from '../../../../lib/index.js';
import { PooledTierDisabledError } from '../../../../lib/tenancy/index.js';
import { write } from '../../../support/migrations.js';
import { useTenancyApps } from '../../../support/tenancy-apps.js';
import { dropRoleAfterAll } from '../../../support/roles.js';

const ROLE = `pooled_${randomUUID().slice(0, 8)}`;
const MIGRATIONS = join(process.cwd(), 'sample-app/migrations/tenant');

describe('the pooled tier', () => {
  const apps = useTenancyApps('tenancy');
  dropRoleAfterAll(ROLE);

  const boot = () =>
    apps.boot({ migrations: MIGRATIONS, pooled: { role: ROLE }, maxStalenessMs: 100 });

  it('serves pooled and schema tenants through the same calls, each held to its rows', async () => {
    const tenants = await boot();
    const small = await tenants.create('small', { tier: 'pooled' });
    const other = await tenants.create('other', { tier: 'pooled' });
    const big = await tenants.create('big');
    expect([small.tier, other.tier, big.tier]).toEqual(['pooled', 'pooled', 'schema']);
    expect(await apps.schemaOid(small.schema)).toBeUndefined();

    for (const id of ['small', 'other', 'big']) {
      const db = await tenants.db(id);
      await db.execute('INSERT INTO {{tables.projects}} (name) VALUES ($1), ($2)', [
        `${id}-1`,
        `${id}-2`,
      ]);
    }
    for (const id of ['small', 'other', 'big']) {
      const db = await tenants.db(id);
      // No tenant filter in the SQL: row-level security does the holding.
      const names = await db.fetchAll<{ name: string }>(
        'SELECT name FROM {{tables.projects}} ORDER BY name',
      );
      expect(names.map((r) => r.name)).toEqual([`${id}-1`, `${id}-2`]);
    }
    const stored = await apps.admin.query(
      'SELECT tenant_id, count(*)::int AS n FROM tenancy_pooled.projects GROUP BY 1 ORDER BY 1',
    );
    expect(stored.rows).toEqual([
      { tenant_id: 'other', n: 2 },
      { tenant_id: 'small', n: 2 },
    ]);
    const role = await apps.admin.query(
      'SELECT rolcanlogin, rolbypassrls, rolsuper FROM pg_roles WHERE rolname = $1',
      [ROLE],
    );
    expect(role.rows).toEqual([{ rolcanlogin: false, rolbypassrls: false, rolsuper: false }]);
  });

  it("drops a pooled tenant by deleting its rows, and no one else's", async () => {
    const tenants = await boot();
    await tenants.create('leaving', { tier: 'pooled' });
    await tenants.create('staying', { tier: 'pooled' });
    for (const id of ['leaving', 'staying']) {
      const db = await tenants.db(id);
      const project = await db.fetchValue<string>(
        'INSERT INTO {{tables.projects}} (name) VALUES ($1) RETURNING id',
        [id],
      );
      await db.execute('INSERT INTO {{tables.tasks}} (project_id, title) VALUES ($1, $2)', [
        project,
        'task',
      ]);
    }
    await tenants.drop('leaving');
    expect(await tenants.get('leaving')).toBeNull();
    const left = await apps.admin.query(
      `SELECT (SELECT array_agg(DISTINCT tenant_id) FROM tenancy_pooled.projects) AS projects,
              (SELECT array_agg(DISTINCT tenant_id) FROM tenancy_pooled.tasks) AS tasks`,
    );
    expect(left.rows[0]).toEqual({ projects: ['staying'], tasks: ['staying'] });
    // The id is free again, in either tier.
    await tenants.create('leaving');
  });

  it('migrates a later file whose foreign key names an older table, with rows in it', async () => {
    const folder = await apps.folder({
      '001_projects.sql':
        'CREATE TABLE {{tables.projects}} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL);',
    });
    let tenants = await apps.boot({ migrations: folder, pooled: { role: ROLE } });
    const projects: Record<string, string> = {};
    for (const id of ['a', 'b']) {
      await tenants.create(id, { tier: 'pooled' });
      const db = await tenants.db(id);
      projects[id] = (await db.fetchValue<string>(
        'INSERT INTO {{tables.projects}} (name) VALUES ($1) RETURNING id',
        [id],
      ))!;
    }
    await apps.closeApps();
    await write(folder, {
      '002_tasks.sql':
        'CREATE TABLE {{tables.tasks}} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, project_id bigint NOT NULL REFERENCES {{tables.projects}} (id), title text NOT NULL);',
    });
    tenants = await apps.boot({ migrations: folder, pooled: { role: ROLE } });
    const { rows } = await apps.admin.query<{ def: string }>(
      `SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint
        WHERE conrelid = 'tenancy_pooled.tasks'::regclass AND contype = 'f'`,
    );
    expect(rows).toEqual([
      {
        def: 'FOREIGN KEY (tenant_id, project_id) REFERENCES tenancy_pooled.projects(tenant_id, id)',
      },
    ]);
    const shims = await apps.admin.query(
      "SELECT relname FROM pg_class WHERE relname LIKE 'pgt\\_shim\\_%'",
    );
    expect(shims.rows).toEqual([]);
    const b = await tenants.db('b');
    await b.execute('INSERT INTO {{tables.tasks}} (project_id, title) VALUES ($1, $2)', [
      projects.b,
      'mine',
    ]);
    await expect(
      b.execute('INSERT INTO {{tables.tasks}} (project_id, title) VALUES ($1, $2)', [
        projects.a,
        "a's",
      ]),
    ).rejects.toMatchObject({ code: '23503' });
  });

  it('refuses such a file when the referenced ids repeat across pooled tenants, keeping nothing of it', async () => {
    const folder = await apps.folder({
      '001_projects.sql':
        'CREATE TABLE {{tables.projects}} (id bigint PRIMARY KEY, name text NOT NULL);',
    });
    const tenants = await apps.boot({ migrations: folder, pooled: { role: ROLE } });
    for (const id of ['a', 'b']) {
      await tenants.create(id, { tier: 'pooled' });
      const db = await tenants.db(id);
      await db.execute('INSERT INTO {{tables.projects}} (id, name) VALUES (1, $1)', [id]);
    }
    await apps.closeApps();
    await write(folder, {
      '002_tasks.sql':
        'CREATE TABLE {{tables.tasks}} (id bigint PRIMARY KEY, project_id bigint REFERENCES {{tables.projects}} (id));',
    });
    const failed = await apps
      .boot({ migrations: folder, pooled: { role: ROLE } })
      .catch((e: unknown) => e);
    expect(String(failed)).toMatch(/002_tasks\.sql/);
    expect(
      (failed as { cause?: { cause?: unknown } }).cause?.cause ??
        (failed as { cause?: unknown }).cause,
    ).toBeInstanceOf(PooledAdaptationError);
    const tasks = await apps.admin.query("SELECT to_regclass('tenancy_pooled.tasks') AS t");
    expect(tasks.rows).toEqual([{ t: null }]);
  });

  it("refuses tier 'pooled' when the tier is off, creating nothing", async () => {
    const tenants = await apps.boot({ migrations: MIGRATIONS });
    await expect(tenants.create('nope', { tier: 'pooled' })).rejects.toThrow(
      PooledTierDisabledError,
    );
    expect(await tenants.get('nope')).toBeNull();
  });
});
