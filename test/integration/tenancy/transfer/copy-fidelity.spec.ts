// Clone and import keep what replay builds, where they once did not: functions hardened with
// SET search_path (PostgreSQL's own advice; the copy's catalog check refused them, and the
// copy's functions must write into the copy), and triggers left disabled, ALWAYS or REPLICA by
// the migrations (the row copy turned every one back on).
import { Test, type TestingModule } from '@nestjs/testing';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { DatabaseModule, TenantService } from '../../../../lib/index.js';
import { adminPool, useTestDatabase } from '../../../support/database.js';
import { useMigrationFolders } from '../../../support/migrations.js';

const FILES = {
  '001_notes.sql': `
CREATE TABLE {{tables.notes}} (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text NOT NULL);
CREATE FUNCTION {{schema}}.add_note(t text) RETURNS int LANGUAGE sql
  SET search_path = {{schema}}, pg_temp
  AS $$ INSERT INTO notes (body) VALUES (t) RETURNING id $$;`,
  '002_triggers.sql': `
CREATE TABLE {{tables.fired}} (trigger text NOT NULL);
CREATE FUNCTION {{schema}}.fire() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO {{tables.fired}} VALUES (TG_NAME); RETURN NEW; END $$;
CREATE TRIGGER off AFTER INSERT ON {{tables.notes}} FOR EACH ROW EXECUTE FUNCTION {{schema}}.fire();
CREATE TRIGGER always AFTER INSERT ON {{tables.notes}} FOR EACH ROW EXECUTE FUNCTION {{schema}}.fire();
CREATE TRIGGER replica AFTER INSERT ON {{tables.notes}} FOR EACH ROW EXECUTE FUNCTION {{schema}}.fire();
CREATE TRIGGER plain AFTER INSERT ON {{tables.notes}} FOR EACH ROW EXECUTE FUNCTION {{schema}}.fire();
ALTER TABLE {{tables.notes}} DISABLE TRIGGER off;
ALTER TABLE {{tables.notes}} ENABLE ALWAYS TRIGGER always;
ALTER TABLE {{tables.notes}} ENABLE REPLICA TRIGGER replica;`,
};

describe('clone and import keep what replay builds', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;
  let app: TestingModule;
  let tenants: TenantService;
  let dir: string;

  beforeAll(async () => {
    admin = adminPool(database.current.url);
    dir = await mkdtemp(join(tmpdir(), 'pgt-search-path-'));
    app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          tenancy: { interceptor: false, migrations: await folder(FILES), template: false },
        }),
      ],
    }).compile();
    await app.init();
    tenants = app.get(TenantService);
    await tenants.create('acme');
  });
  afterAll(async () => {
    await app?.close();
    await rm(dir, { recursive: true, force: true });
    await admin?.end();
  });

  /** Calls the tenant's add_note() and says which tenants' notes it wrote. */
  async function writesOf(id: string): Promise<string[]> {
    await admin.query(`SELECT "tenant_${id}".add_note('from ${id}')`);
    const { rows } = await admin.query<{ nspname: string }>(
      `SELECT n.nspname FROM pg_namespace n WHERE n.nspname LIKE 'tenant\\_%'
          AND EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid AND c.relname = 'notes')
        ORDER BY 1`,
    );
    const wrote: string[] = [];
    for (const { nspname } of rows) {
      const found = await admin.query(`SELECT 1 FROM "${nspname}".notes WHERE body = $1`, [
        `from ${id}`,
      ]);
      if (found.rowCount) wrote.push(nspname);
    }
    return wrote;
  }

  it('clones such a tenant, whose functions then use the clone', async () => {
    await tenants.clone('acme', 'acme_copy');
    expect(await writesOf('acme_copy')).toEqual(['tenant_acme_copy']);
  });

  it('imports its export under another id, whose functions then use the import', async () => {
    await tenants.export('acme', join(dir, 'acme'));
    await tenants.import(join(dir, 'acme'), { id: 'acme_imported' });
    expect(await writesOf('acme_imported')).toEqual(['tenant_acme_imported']);
  });

  it('imports an export written before search paths were normalised', async () => {
    const path = join(dir, 'older');
    await tenants.export('acme', path);
    const manifest = JSON.parse(await readFile(join(path, 'manifest.json'), 'utf8')) as {
      fingerprint: string[];
    };
    // What earlier releases stored: the exporting schema's name in the search_path list.
    manifest.fingerprint = manifest.fingerprint.map((line) =>
      line.replaceAll("'{{schema}}'", "'tenant_acme'"),
    );
    expect(JSON.stringify(manifest.fingerprint)).toContain("TO 'tenant_acme'");
    await writeFile(join(path, 'manifest.json'), JSON.stringify(manifest));
    await tenants.import(path, { id: 'acme_older' });
    expect(await writesOf('acme_older')).toEqual(['tenant_acme_older']);
  });

  it('keeps each trigger disabled, ALWAYS, REPLICA or enabled as the migrations left it', async () => {
    const states = async (id: string) =>
      (
        await admin.query<{ name: string; state: string }>(
          `SELECT tgname AS name, tgenabled AS state FROM pg_trigger
            WHERE tgrelid = '"tenant_${id}".notes'::regclass ORDER BY tgname`,
        )
      ).rows;
    const expected = [
      { name: 'always', state: 'A' },
      { name: 'off', state: 'D' },
      { name: 'plain', state: 'O' },
      { name: 'replica', state: 'R' },
    ];
    expect(await states('acme')).toEqual(expected);
    await tenants.clone('acme', 'acme_triggers');
    await tenants.export('acme', join(dir, 'triggers'));
    await tenants.import(join(dir, 'triggers'), { id: 'acme_triggers_imported' });
    for (const id of ['acme_triggers', 'acme_triggers_imported']) {
      expect(await states(id)).toEqual(expected);
      await admin.query(`TRUNCATE "tenant_${id}".fired`);
      await admin.query(`INSERT INTO "tenant_${id}".notes (body) VALUES ('x')`);
      const fired = await admin.query(`SELECT trigger FROM "tenant_${id}".fired ORDER BY 1`);
      expect(fired.rows.map((r) => r.trigger)).toEqual(['always', 'plain']);
    }
  });
});
