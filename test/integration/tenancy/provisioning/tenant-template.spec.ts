import { Test, type TestingModule } from '@nestjs/testing';
import pg from 'pg';
import { DatabaseModule, TenantService, type TenancyOptions } from '../../../../lib/index.js';
import { exactFingerprint } from '../../../../lib/catalog/fingerprints.js';
import { adminPool, useTestDatabase } from '../../../support/database.js';
import { useMigrationFolders } from '../../../support/migrations.js';
import { dumpSchema, pgDumpFor } from '../../../support/pg-dump.js';

const REGISTRY = 'reg_tpl';
const TEMPLATE = `${REGISTRY}$template`;

// Every kind of object the template copies, built the way real migrations build them: in
// steps, with renames, dropped columns, backfills and replaced functions.
const FILES: Record<string, string> = {
  '001_accounts.sql': `
CREATE TABLE {{tables.users}} (
  id bigint GENERATED ALWAYS AS IDENTITY (START WITH 100 INCREMENT BY 5) PRIMARY KEY,
  email text NOT NULL,
  legacy text,
  nickname text COLLATE "C" DEFAULT 'anon',
  created_at timestamptz NOT NULL DEFAULT now(),
  score numeric(10, 2) CONSTRAINT score_positive CHECK (score >= 0),
  email_lower text GENERATED ALWAYS AS (lower(email)) STORED
);
ALTER TABLE {{tables.users}} RENAME TO accounts;
ALTER TABLE {{tables.accounts}} DROP COLUMN legacy;
ALTER TABLE {{tables.accounts}} ADD CONSTRAINT accounts_email_key UNIQUE (email);
CREATE SEQUENCE {{schema}}.invoice_numbers AS integer START 1000 INCREMENT 10 CACHE 1;
-- side effect outside the schema: counts the replays of this file
INSERT INTO probe.replays (schema_name) VALUES (current_setting('application_name'));
`,
  '002_projects.sql': `
CREATE TABLE {{tables.projects}} (
  id serial PRIMARY KEY,
  account_id bigint NOT NULL,
  title text NOT NULL,
  tags text[] NOT NULL DEFAULT '{}',
  archived boolean NOT NULL DEFAULT false,
  CONSTRAINT projects_account_fk FOREIGN KEY (account_id)
    REFERENCES {{tables.accounts}} (id) ON DELETE CASCADE DEFERRABLE
);
CREATE INDEX projects_open ON {{tables.projects}} (account_id) WHERE NOT archived;
CREATE UNIQUE INDEX projects_title_ci ON {{tables.projects}} (account_id, lower(title));
CREATE TABLE {{tables.audit}} (id bigserial PRIMARY KEY, project_id int, action text NOT NULL)
  WITH (fillfactor = 70);
ALTER TABLE {{tables.audit}} REPLICA IDENTITY FULL;
`,
  '003_code.sql': `
CREATE FUNCTION {{schema}}.next_invoice() RETURNS integer LANGUAGE sql
  AS $$ SELECT nextval('{{schema}}.invoice_numbers')::integer $$;
CREATE FUNCTION {{schema}}.log_project() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO {{tables.audit}} (project_id, action) VALUES (NEW.id, TG_OP);
  RETURN NEW;
END
$fn$;
CREATE TRIGGER projects_audit AFTER INSERT OR UPDATE ON {{tables.projects}}
  FOR EACH ROW EXECUTE FUNCTION {{schema}}.log_project();
CREATE FUNCTION {{schema}}.project_count(account bigint) RETURNS bigint LANGUAGE sql STABLE
BEGIN ATOMIC
  SELECT count(*) FROM {{tables.projects}} WHERE account_id = account;
END;
CREATE VIEW {{schema}}.open_projects AS
  SELECT p.id, p.title, a.email FROM {{tables.projects}} p JOIN {{tables.accounts}} a ON a.id = p.account_id
   WHERE NOT p.archived;
CREATE VIEW {{schema}}.open_project_titles WITH (security_barrier) AS
  SELECT title FROM {{schema}}.open_projects;
`,
  '004_backfill.sql': `
ALTER TABLE {{tables.projects}} ADD COLUMN invoice integer;
INSERT INTO {{tables.accounts}} (email, score, created_at)
  VALUES ('owner@example.com', 10, '2026-01-01'), ('admin@example.com', 2, '2026-01-02');
INSERT INTO {{tables.projects}} (account_id, title, tags)
  SELECT id, 'Welcome ' || email, ARRAY['seed'] FROM {{tables.accounts}};
-- the sequence by its oid: calling {{schema}}.next_invoice() here would run the schema's own
-- code now, which makes a file replayed per tenant (see schema-dependence.ts)
UPDATE {{tables.projects}} SET invoice = nextval((SELECT tableoid FROM {{schema}}.invoice_numbers));
ALTER TABLE {{tables.projects}} ALTER COLUMN invoice SET NOT NULL;
CREATE OR REPLACE FUNCTION {{schema}}.log_project() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO {{tables.audit}} (project_id, action) VALUES (NEW.id, lower(TG_OP));
  RETURN NEW;
END
$fn$;
ALTER TABLE {{tables.projects}} DISABLE TRIGGER projects_audit;
ALTER TABLE {{tables.projects}} ENABLE TRIGGER projects_audit;
`,
  '005_grants_comments.sql': `
GRANT USAGE ON SCHEMA {{schema}} TO PUBLIC;
GRANT SELECT ON {{tables.accounts}} TO PUBLIC;
GRANT SELECT (title), UPDATE (archived) ON {{tables.projects}} TO PUBLIC;
GRANT USAGE ON SEQUENCE {{schema}}.invoice_numbers TO pg_monitor WITH GRANT OPTION;
GRANT SELECT ON {{schema}}.open_projects TO pg_monitor;
REVOKE EXECUTE ON FUNCTION {{schema}}.next_invoice() FROM PUBLIC;
COMMENT ON SCHEMA {{schema}} IS 'one customer';
COMMENT ON TABLE {{tables.accounts}} IS 'who can sign in';
COMMENT ON COLUMN {{tables.accounts}}.email IS 'unique, any case';
COMMENT ON FUNCTION {{schema}}.next_invoice() IS 'invoice numbers step by 10';
COMMENT ON TRIGGER projects_audit ON {{tables.projects}} IS 'keeps the audit trail';
COMMENT ON CONSTRAINT score_positive ON {{tables.accounts}} IS 'no debts';
COMMENT ON INDEX {{schema}}.projects_open IS 'the dashboard query';
COMMENT ON VIEW {{schema}}.open_projects IS 'what the dashboard lists';
`,
};

describe('tenant template', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;
  const apps: TestingModule[] = [];
  const warnings: string[] = [];

  async function boot(tenancy: TenancyOptions): Promise<TenantService> {
    const app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          pool: { max: 4, applicationName: 'template-spec' },
          tenancy: { interceptor: false, registrySchema: REGISTRY, ...tenancy },
        }),
      ],
    })
      .setLogger({
        log: () => undefined,
        error: () => undefined,
        warn: (message: unknown) => {
          warnings.push(String(message));
        },
      })
      .compile();
    apps.push(app);
    await app.init();
    return app.get(TenantService);
  }

  const replays = async () =>
    Number((await admin.query('SELECT count(*) FROM probe.replays')).rows[0].count);
  const history = async (schema: string) =>
    (
      await admin.query<{ version: number; name: string; checksum: string }>(
        `SELECT version, name, checksum FROM "${schema}".schema_migrations ORDER BY version`,
      )
    ).rows;
  /** The spare schemas listed, by name, with their oids. */
  const spares = async () =>
    (
      await admin.query<{ name: string; oid: string; digest: string }>(
        `SELECT s.schema_name AS name, n.oid::text AS oid, s.digest
           FROM ${REGISTRY}.tenant_template_spares s
           JOIN pg_namespace n ON n.nspname = s.schema_name ORDER BY s.made_at`,
      )
    ).rows;
  const schemaOid = async (schema: string) =>
    (
      await admin.query<{ oid: string }>('SELECT oid::text FROM pg_namespace WHERE nspname = $1', [
        schema,
      ])
    ).rows[0]?.oid;
  const fingerprint = async (schema: string) => {
    const client = await admin.connect();
    try {
      return await exactFingerprint(client, schema);
    } finally {
      client.release();
    }
  };

  beforeAll(async () => {
    admin = adminPool(database.current.url);
    await admin.query('CREATE SCHEMA probe; CREATE TABLE probe.replays (schema_name text)');
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
    await admin.query(`DROP SCHEMA IF EXISTS ${REGISTRY} CASCADE`);
    await admin.query(`DROP SCHEMA IF EXISTS "${TEMPLATE}" CASCADE`);
    const { rows } = await admin.query<{ nspname: string }>(
      "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant\\_%' OR nspname LIKE 'reg\\_tpl$spare\\_%'",
    );
    for (const { nspname } of rows) await admin.query(`DROP SCHEMA "${nspname}" CASCADE`);
    await admin.query('TRUNCATE probe.replays');
    warnings.length = 0;
  });
  afterAll(() => admin.end());

  it('clones a tenant equal to one built by replaying its migrations', async () => {
    const migrations = await folder(FILES);
    const replaying = await boot({ migrations, template: false });
    await replaying.create('replayed');
    expect(await replays()).toBe(1);

    const cloning = await boot({ migrations });
    const afterTemplate = await replays(); // start-up built the template by replay
    const ready = await spares(); // start-up made the spares too
    expect(ready).toHaveLength(2);
    await cloning.create('cloned');
    expect(warnings).toEqual([]);
    expect(await replays()).toBe(afterTemplate); // nothing was replayed for the clone
    // It is the oldest spare, renamed (its functions re-pointed at the new name).
    expect(await schemaOid('tenant_cloned')).toBe(ready[0].oid);
    expect(await schemaOid(ready[0].name)).toBeUndefined();

    const [replayed, cloned] = [
      await fingerprint('tenant_replayed'),
      await fingerprint('tenant_cloned'),
    ];
    expect(cloned).toEqual(replayed);
    // The fingerprint does see what matters: rows, sequence positions, grants, code.
    expect(replayed.some((l) => /^rows projects 2 /.test(l))).toBe(true);
    expect(replayed.some((l) => /^sequence invoice_numbers .* last=1010 /.test(l))).toBe(true);
    expect(replayed.some((l) => l.includes('INSERT INTO <schema>."audit"'))).toBe(true);
    expect(await history('tenant_cloned')).toEqual(await history('tenant_replayed'));

    // The clone works on its own schema: its trigger and function use its own tables.
    const db = await cloning.db('cloned');
    await db.execute(
      "INSERT INTO {{tables.projects}} (account_id, title, invoice) VALUES (100, 'x', {{schema}}.next_invoice())",
    );
    const audit = await admin.query(
      "SELECT action FROM tenant_cloned.audit WHERE action = 'insert'",
    );
    expect(audit.rowCount).toBe(1); // the replaced function's lower-case action
    expect((await admin.query('SELECT count(*) FROM tenant_cloned.audit')).rows[0].count).toBe('5');
    const invoice = await admin.query('SELECT max(invoice) AS n FROM tenant_cloned.projects');
    expect(invoice.rows[0].n).toBe(1020);

    await comparePgDump('tenant_replayed', 'tenant_cloned');

    // Without spares the template is copied: the same result.
    const copying = await boot({ migrations, templateSpares: 0 });
    const copied = await copying.create('copied');
    expect(copied.status).toBe('active');
    expect(await spares()).toEqual([]); // templateSpares: 0 dropped the spares left
    expect(await fingerprint('tenant_copied')).toEqual(replayed);
    expect(await history('tenant_copied')).toEqual(await history('tenant_replayed'));
    expect(await replays()).toBe(afterTemplate);
    expect(warnings).toEqual([]);
  });

  it('gives concurrent creates distinct spares, and copies the template when none is left', async () => {
    const migrations = await folder(FILES);
    const service = await boot({ migrations, templateSpares: 3 });
    const ready = await spares();
    expect(ready).toHaveLength(3);
    const before = await replays();
    const ids = ['c1', 'c2', 'c3', 'c4', 'c5'];
    await Promise.all(ids.map((id) => service.create(id)));
    const oids = await Promise.all(ids.map((id) => schemaOid(`tenant_${id}`)));
    // Each spare went to exactly one tenant; the others were copied (or took a newer spare).
    expect(oids.filter((oid) => ready.some((s) => s.oid === oid))).toHaveLength(3);
    expect(new Set(oids).size).toBe(5);
    expect(await replays()).toBe(before);
    const expected = await fingerprint('tenant_c1');
    for (const id of ids.slice(1)) expect(await fingerprint(`tenant_${id}`)).toEqual(expected);
    for (const id of ids) expect(await history(`tenant_${id}`)).toHaveLength(5);
    // The spares are never tenants.
    expect((await service.list()).map((t) => t.id).sort()).toEqual(ids);
    expect(warnings).toEqual([]);
  });

  it('keeps a provisioning session between creates and closes it at shutdown', async () => {
    const migrations = await folder(FILES);
    const service = await boot({ migrations, templateSpares: 0 });
    const sessions = async () =>
      (
        await admin.query<{ pid: number }>(
          `SELECT pid FROM pg_stat_activity
            WHERE application_name = 'nestjs-pg-tenancy:provisioning' AND datname = current_database()`,
        )
      ).rows.map((r) => r.pid);
    await service.create('k1');
    const kept = await sessions();
    expect(kept).toHaveLength(1);
    await service.create('k2');
    expect(await sessions()).toEqual(kept); // the same backend served the second create
    await Promise.all(apps.splice(0).map((app) => app.close()));
    expect(await sessions()).toEqual([]);
  });

  it('replays files marked no-template, and those after them, on top of the clone', async () => {
    const migrations = await folder({
      ...FILES,
      '006_stamp.sql':
        '-- pg-tenancy: no-template\nCREATE TABLE {{tables.created}} (at timestamptz NOT NULL DEFAULT now());\nINSERT INTO {{tables.created}} DEFAULT VALUES;\n',
      '007_more.sql': 'ALTER TABLE {{tables.created}} ADD COLUMN note text;\n',
    });
    const service = await boot({ migrations });
    expect(await history(TEMPLATE)).toHaveLength(5);
    const before = await replays();
    await service.create('stamped');
    expect(await replays()).toBe(before);
    const rows = await history('tenant_stamped');
    expect(rows.map((r) => r.name)).toEqual(
      Object.keys(FILES).concat('006_stamp.sql', '007_more.sql'),
    );
    const created = await admin.query<{ at: Date }>('SELECT at FROM tenant_stamped.created');
    expect(Date.now() - created.rows[0].at.getTime()).toBeLessThan(60_000);
  });

  it('falls back to replay, with a warning, when the template holds what it cannot copy', async () => {
    const migrations = await folder({
      ...FILES,
      '006_enum.sql': "CREATE TYPE {{schema}}.mood AS ENUM ('ok', 'meh');\n",
    });
    const service = await boot({ migrations });
    const before = await replays();
    await service.create('moody');
    expect(await replays()).toBe(before + 1);
    expect(warnings.join('\n')).toMatch(/cannot be cloned exactly \(type .*mood\)/);
    expect(await history('tenant_moody')).toHaveLength(6);
  });

  it('rebuilds the template when an applied file changed, and clones only an exact match', async () => {
    const migrations = await folder(FILES);
    await boot({ migrations });
    const templateBefore = await history(TEMPLATE);
    await Promise.all(apps.splice(0).map((app) => app.close()));
    // A new deploy with one more file: start-up brings the template along, concurrently.
    const next = await folder({
      ...FILES,
      '006_extra.sql': 'CREATE TABLE {{tables.extra}} (id int);\n',
    });
    const oldSpares = await spares();
    expect(oldSpares).toHaveLength(2);
    const [a, b] = await Promise.all([boot({ migrations: next }), boot({ migrations: next })]);
    expect((await history(TEMPLATE)).slice(0, 5)).toEqual(templateBefore);
    expect(await history(TEMPLATE)).toHaveLength(6);
    // Spares of the old files are dropped; those made now are of the new files.
    const newSpares = await spares();
    expect(newSpares.length).toBeGreaterThanOrEqual(2);
    expect(newSpares.map((s) => s.digest)).not.toContain(oldSpares[0].digest);
    const left = await admin.query('SELECT 1 FROM pg_namespace WHERE nspname = ANY($1)', [
      oldSpares.map((s) => s.name),
    ]);
    expect(left.rowCount).toBe(0);
    const before = await replays();
    await Promise.all([a.create('one'), b.create('two')]);
    expect(await replays()).toBe(before);
    expect(await fingerprint('tenant_two')).toEqual(await fingerprint('tenant_one'));
    // An instance still on the old files replays rather than clone the newer template.
    const old = await boot({ migrations, template: true });
    await old.create('old');
    expect(await replays()).toBe(before + 1);
    expect(await history('tenant_old')).toHaveLength(5);
  });

  /**
   * `pg_dump --schema-only` of both, schema names normalised: equal. Skipped loudly where no
   * pg_dump of the server's version is installed; never skipped under PG_DUMP_REQUIRED=1 (set by
   * compat/postgres15.sh, which CI runs on Debian's PostgreSQL 15).
   */
  async function comparePgDump(a: string, b: string): Promise<void> {
    const binary = await pgDumpFor(admin);
    if (binary === undefined) return;
    const url = database.current.url;
    expect(await dumpSchema(binary, url, b)).toEqual(await dumpSchema(binary, url, a));
  }
});
