import { write } from '../../../support/migrations.js';
import { useTenancyApps } from '../../../support/tenancy-apps.js';

const REGISTRY = 'reg_checks';
const TEMPLATE = `${REGISTRY}$template`;

const FILES: Record<string, string> = {
  '001_docs.sql': 'CREATE TABLE {{tables.docs}} (id serial PRIMARY KEY, body text);\n',
  '002_tags.sql': 'CREATE TABLE {{tables.tags}} (doc_id int, tag text NOT NULL);\n',
};
const NEXT = { '003_links.sql': 'CREATE TABLE {{tables.links}} (url text);\n' };

// What a template copy must never skip: the digest of a spare's files, and the fingerprint
// comparison of a copy with the template.
describe('template checks', () => {
  const t = useTenancyApps(REGISTRY);

  const spares = async () =>
    (
      await t.admin.query<{ name: string; oid: string }>(
        `SELECT s.schema_name AS name, n.oid::text AS oid FROM ${REGISTRY}.tenant_template_spares s
           JOIN pg_namespace n ON n.nspname = s.schema_name ORDER BY s.made_at`,
      )
    ).rows;

  it('never takes a spare made from other files: an instance whose folder gained a file', async () => {
    const dir = await t.folder(FILES);
    const service = await t.boot({ migrations: dir, templateSpares: 1 });
    const [spare] = await spares();
    await write(dir, NEXT); // a file added while the instance runs (the loader sees it)
    await service.create('acme');
    expect(await t.history('tenant_acme')).toEqual([...Object.keys(FILES), ...Object.keys(NEXT)]);
    expect(await t.schemaOid('tenant_acme')).not.toBe(spare.oid);
    expect(await t.schemaOid(spare.name)).toBe(spare.oid);
  });

  it('never takes a spare made from other files: an instance of the previous release', async () => {
    const older = await t.boot({ migrations: await t.folder(FILES), templateSpares: 1 });
    await older.create('first'); // takes the spare of its files; another is made meanwhile
    // The next release starts: the template moves on, and the spares are of its files now.
    await t.boot({ migrations: await t.folder({ ...FILES, ...NEXT }), templateSpares: 1 });
    expect(await t.history(TEMPLATE)).toHaveLength(3);
    const newer = await spares();
    expect(newer).toHaveLength(1);
    await older.create('second');
    expect(await t.history('tenant_second')).toEqual(Object.keys(FILES));
    expect(await t.admin.query(`SELECT to_regclass('tenant_second.links') AS t`)).toMatchObject({
      rows: [{ t: null }],
    });
    expect(await spares()).toEqual(newer);
  });

  it('copies instead of renaming a spare, with a warning, when a renamed copy would differ', async () => {
    // A dollar-quoted constant is expanded: the view holds the schema's name as text, which the
    // copy script re-points and a rename of a spare would not.
    const migrations = await t.folder({
      ...FILES,
      '003_whoami.sql': 'CREATE VIEW {{schema}}.whoami AS SELECT $q${{schema}}$q$::text AS name;\n',
    });
    const service = await t.boot({ migrations, templateSpares: 1 });
    expect(t.warnings.join('\n')).toMatch(/Spare schemas are not used .*view whoami/);
    expect(await spares()).toEqual([]);
    await service.create('acme');
    const { rows } = await t.admin.query('SELECT name FROM tenant_acme.whoami');
    expect(rows).toEqual([{ name: '"tenant_acme"' }]);
    expect(await t.history('tenant_acme')).toHaveLength(3);
  });

  it('replays, with a warning naming the object, when a copy of the template differs', async () => {
    // Default privileges are not something the copy script reproduces: only the check sees them.
    const migrations = await t.folder({
      ...FILES,
      '003_defaults.sql':
        'ALTER DEFAULT PRIVILEGES IN SCHEMA {{schema}} GRANT SELECT ON TABLES TO PUBLIC;\n',
    });
    const replaying = await t.boot({ migrations, template: false });
    await replaying.create('replayed');
    const service = await t.boot({ migrations, templateSpares: 0 });
    await service.create('copied');
    expect(t.warnings.join('\n')).toMatch(
      /cannot be cloned exactly \(the copy (lacks|has more): object default acl /,
    );
    expect(await t.fingerprint('tenant_copied')).toEqual(await t.fingerprint('tenant_replayed'));
  });
});
