// Export, import, clone, rename, exec and forEach with a pooled tenant: its rows leave and enter
// the shared tables held to it, in the format a schema tenant's export has, into either tier.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { TenantRenameError } from '../../../../lib/tenancy/index.js';
import { TenantAlreadyExistsError } from '../../../../lib/index.js';
import type { TenantService } from '../../../../lib/index.js';
import { useTenancyApps } from '../../../support/tenancy-apps.js';

const ROLE = `pooled_${randomUUID().slice(0, 8)}`;
const MIGRATIONS = join(process.cwd(), 'sample-app/migrations/tenant');

describe('fleet operations on a pooled tenant', () => {
  const apps = useTenancyApps('tenancy');
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgt-pooled-export-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
    const admin = new pg.Client(process.env.DATABASE_URL);
    await admin.connect();
    await admin.query(`DROP ROLE IF EXISTS ${ROLE}`);
    await admin.end();
  });

  const boot = () =>
    apps.boot({ migrations: MIGRATIONS, pooled: { role: ROLE }, maxStalenessMs: 100 });

  /** Two projects with a task each, written through the tenant's own manager. */
  async function seed(tenants: TenantService, id: string): Promise<void> {
    const db = await tenants.db(id);
    for (const name of [`${id}-a`, `${id}-b`]) {
      const project = await db.fetchValue<string>(
        'INSERT INTO {{tables.projects}} (name) VALUES ($1) RETURNING id',
        [name],
      );
      await db.execute('INSERT INTO {{tables.tasks}} (project_id, title) VALUES ($1, $2)', [
        project,
        `${name} task`,
      ]);
    }
  }

  /** What a tenant holds, ids left out (they are the tier's to give). */
  async function contents(tenants: TenantService, id: string) {
    const db = await tenants.db(id);
    return db.fetchAll(
      `SELECT p.name, t.title FROM {{tables.projects}} p
         JOIN {{tables.tasks}} t ON t.project_id = p.id ORDER BY p.name`,
    );
  }

  it('exports a pooled tenant as a schema tenant is exported, and imports it into either tier', async () => {
    const tenants = await boot();
    await tenants.create('small', { tier: 'pooled' });
    await tenants.create('other', { tier: 'pooled' });
    await seed(tenants, 'small');
    await seed(tenants, 'other');
    const expected = await contents(tenants, 'small');
    expect(expected).toHaveLength(2);

    const path = join(dir, 'small');
    const exported = await tenants.export('small', path);
    // Its rows only: two projects and two tasks, and the three files of the shared history.
    expect(exported).toMatchObject({ rows: 2 + 2 + 3 });

    const asSchema = await tenants.import(path, { id: 'big' });
    expect(asSchema).toMatchObject({ tier: 'schema', schema: 'tenant_big', status: 'active' });
    expect(await contents(tenants, 'big')).toEqual(expected);
    // Its sequences are past every copied id: a new row does not collide.
    await seed(tenants, 'big');

    // Ids are kept, beside the source's: keys are per tenant.
    const asPooled = await tenants.import(path, { id: 'again', tier: 'pooled' });
    expect(asPooled).toMatchObject({ tier: 'pooled', status: 'active', migratedVersion: 3 });
    expect(await apps.schemaOid('tenant_again')).toBeUndefined();
    expect(await contents(tenants, 'again')).toEqual(expected);
    await seed(tenants, 'again');
    const stored = await apps.admin.query(
      'SELECT tenant_id, count(*)::int AS n FROM tenancy_pooled.projects GROUP BY 1 ORDER BY 1',
    );
    expect(stored.rows).toEqual([
      { tenant_id: 'again', n: 4 },
      { tenant_id: 'other', n: 2 },
      { tenant_id: 'small', n: 2 },
    ]);
    await tenants.drop('small');
    // A drop deletes the tenant's rows, never the pooled schema's shared history.
    expect(await apps.history('tenancy_pooled')).toHaveLength(3);

    // A schema tenant's export goes into the pooled tier too.
    const fromSchema = join(dir, 'big');
    await tenants.export('big', fromSchema);
    await tenants.import(fromSchema, { id: 'shrunk', tier: 'pooled' });
    expect(await contents(tenants, 'shrunk')).toEqual(await contents(tenants, 'big'));
  });

  it('clones a pooled tenant into a new pooled tenant, ids kept, and refuses a rename', async () => {
    // Keys and a foreign key, made per tenant by the adaptation: ids are kept in the clone.
    const migrations = await apps.folder({
      '001_items.sql': `CREATE TABLE {{tables.items}} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text);
        CREATE TABLE {{tables.notes}} (item_id bigint REFERENCES {{tables.items}} (id), body text);`,
    });
    const tenants = await apps.boot({ migrations, pooled: { role: ROLE } });
    await tenants.create('tmpl', { tier: 'pooled', metadata: { plan: 'demo' } });
    await tenants.create('other', { tier: 'pooled' });
    for (const id of ['tmpl', 'other']) {
      const db = await tenants.db(id);
      const item = await db.fetchValue<string>(
        'INSERT INTO {{tables.items}} (name) VALUES ($1) RETURNING id',
        [id],
      );
      await db.execute('INSERT INTO {{tables.notes}} (item_id, body) VALUES ($1, $2)', [item, id]);
    }
    const read = async (id: string) =>
      (await tenants.db(id)).fetchAll(
        'SELECT i.id, i.name, n.body FROM {{tables.items}} i JOIN {{tables.notes}} n ON n.item_id = i.id',
      );
    const source = await read('tmpl');
    const clone = await tenants.clone('tmpl', 'acme');
    expect(clone).toMatchObject({ tier: 'pooled', status: 'active', metadata: { plan: 'demo' } });
    expect(clone.migratedVersion).toBe(1);
    expect(await apps.schemaOid('tenant_acme')).toBeUndefined();
    expect(await read('acme')).toEqual(source);
    expect(await read('tmpl')).toEqual(source);
    const stored = await apps.admin.query(
      'SELECT tenant_id, count(*)::int AS n FROM tenancy_pooled.notes GROUP BY 1 ORDER BY 1',
    );
    expect(stored.rows).toEqual([
      { tenant_id: 'acme', n: 1 },
      { tenant_id: 'other', n: 1 },
      { tenant_id: 'tmpl', n: 1 },
    ]);
    await expect(tenants.clone('tmpl', 'other')).rejects.toThrow(TenantAlreadyExistsError);

    await expect(tenants.rename('acme', 'renamed')).rejects.toThrow(TenantRenameError);
    await expect(tenants.rename('acme', 'renamed')).rejects.toThrow(/pooled tier.*moveTier/);
    expect(await tenants.get('renamed')).toBeNull();
    expect(await read('acme')).toEqual(source);
  });

  it('runs exec and forEach in a pooled tenant held to its rows', async () => {
    const tenants = await boot();
    await tenants.create('small', { tier: 'pooled' });
    await tenants.create('other', { tier: 'pooled' });
    await tenants.create('big');
    for (const id of ['small', 'other', 'big']) await seed(tenants, id);
    // Several statements, a semicolon inside a literal: run one by one, held to the tenant.
    const result = await tenants.exec(
      'small',
      `UPDATE {{tables.projects}} SET description = 'x;y';
       UPDATE {{tables.projects}} SET description = left(description, 1) WHERE description = 'x;y'`,
    );
    expect(result.rowCount).toBe(2);
    const counts: Record<string, number> = {};
    await tenants.forEach(async (db, tenant) => {
      counts[tenant.id] = Number(
        await db.fetchValue("SELECT count(*) FROM {{tables.projects}} WHERE description = 'x'"),
      );
    });
    expect(counts).toEqual({ small: 2, other: 0, big: 0 });
  });

  it("repairs a pooled tenant's drop a crash interrupted, and leaves an active one alone", async () => {
    const tenants = await boot();
    await tenants.create('small', { tier: 'pooled' });
    await tenants.create('other', { tier: 'pooled' });
    await seed(tenants, 'small');
    await seed(tenants, 'other');
    expect(await tenants.repair('small')).toMatchObject({ action: 'none', after: 'active' });
    // A crash right after the drop marked it.
    await apps.admin.query("UPDATE tenancy.tenants SET status = 'dropping' WHERE id = 'small'");
    expect(await tenants.repair('small')).toMatchObject({
      before: 'dropping',
      action: 'finished-drop',
      after: null,
    });
    expect(await tenants.get('small')).toBeNull();
    const left = await apps.admin.query(
      'SELECT DISTINCT tenant_id FROM tenancy_pooled.tasks ORDER BY 1',
    );
    expect(left.rows).toEqual([{ tenant_id: 'other' }]);
    expect(await apps.history('tenancy_pooled')).toHaveLength(3);
  });
});
