// Clone and import of a tenant whose functions are hardened with SET search_path (PostgreSQL's
// own advice): the copy's catalog check must see the same schema, and the copy's functions must
// write into the copy.
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
};

describe('clone and import of SET search_path functions', () => {
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
    const manifest = JSON.parse(await readFile(join(path, 'manifest.json'), 'utf8'));
    // What earlier releases stored: the exporting schema's name in the search_path list.
    manifest.fingerprint = manifest.fingerprint.map((line: string) =>
      line.replaceAll("'{{schema}}'", "'tenant_acme'"),
    );
    expect(JSON.stringify(manifest.fingerprint)).toContain("TO 'tenant_acme'");
    await writeFile(join(path, 'manifest.json'), JSON.stringify(manifest));
    await tenants.import(path, { id: 'acme_older' });
    expect(await writesOf('acme_older')).toEqual(['tenant_acme_older']);
  });
});
