import { TenantRenameError } from '../../../../lib/tenancy/index.js';
import { useTenancyApps } from '../../../support/tenancy-apps.js';

const REGISTRY = 'reg_rename';

// Functions that reach the schema by name as text, in every form a migration writes it.
const FILES: Record<string, string> = {
  '001_notes.sql': `
CREATE TABLE {{tables.notes}} (id serial PRIMARY KEY, body text NOT NULL);
CREATE FUNCTION {{schema}}.add_note(t text) RETURNS void LANGUAGE sql
  SET search_path = {{schema}} AS $$ INSERT INTO notes (body) VALUES (t) $$;
CREATE FUNCTION {{schema}}.add_listed(t text) RETURNS void LANGUAGE sql
  SET search_path TO pg_catalog, {{schema}} AS $$ INSERT INTO notes (body) VALUES (t) $$;
CREATE FUNCTION {{schema}}.add_qualified(t text) RETURNS void LANGUAGE sql
  AS $$ INSERT INTO {{tables.notes}} (body) VALUES (t) $$;
CREATE FUNCTION {{schema}}.add_dynamic(t text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config('search_path', '{{schema}}', true);
  EXECUTE 'INSERT INTO notes (body) VALUES ($1)' USING t;
END $$;
CREATE PROCEDURE {{schema}}.add_proc(t text) LANGUAGE plpgsql SET search_path = {{schema}}
  AS $$ BEGIN INSERT INTO notes (body) VALUES (t); END $$;
CREATE FUNCTION {{schema}}.add_atomic(t text) RETURNS void LANGUAGE sql
  SET search_path = {{schema}}
BEGIN ATOMIC
  INSERT INTO {{tables.notes}} (body) VALUES (t);
END;
`,
};

const CALLS = [
  'SELECT {s}.add_note($1)',
  'SELECT {s}.add_listed($1)',
  'SELECT {s}.add_qualified($1)',
  'SELECT {s}.add_dynamic($1)',
  'CALL {s}.add_proc($1)',
  'SELECT {s}.add_atomic($1)',
];

describe('tenant rename and clone: functions that name the schema as text', () => {
  const t = useTenancyApps(REGISTRY);

  const notes = async (schema: string) =>
    (
      await t.admin.query<{ body: string }>(`SELECT body FROM "${schema}".notes ORDER BY id`)
    ).rows.map((r) => r.body);

  it.each([
    ['replayed', { template: false }],
    ['template-copied', { templateSpares: 0 }],
    ['spare-renamed', {}],
  ])(
    'a %s tenant renamed, then its old id re-created: every function writes into its own schema',
    async (_, options) => {
      const service = await t.boot({ migrations: await t.folder(FILES), ...options });
      await service.create('acme');
      await service.rename('acme', 'acme_corp');
      await service.create('acme');
      for (const [i, call] of CALLS.entries()) {
        await t.admin.query(call.replace('{s}', '"tenant_acme_corp"'), [`corp ${i}`]);
        await t.admin.query(call.replace('{s}', '"tenant_acme"'), [`new ${i}`]);
      }
      expect(await notes('tenant_acme_corp')).toEqual(CALLS.map((_, i) => `corp ${i}`));
      expect(await notes('tenant_acme')).toEqual(CALLS.map((_, i) => `new ${i}`));
      const defs = await t.admin.query<{ def: string }>(
        `SELECT pg_get_functiondef(p.oid) AS def FROM pg_proc p
          WHERE p.pronamespace = 'tenant_acme_corp'::regnamespace`,
      );
      const left = defs.rows.filter((r) => /(^|[^a-z_])tenant_acme([^a-z_]|$)/.test(r.def));
      expect(left).toEqual([]);
      expect(t.warnings).toEqual([]);
    },
  );

  it('leaves alone a table named like the schema: only schema positions are re-pointed', async () => {
    // No prefix: tenant "notes" has schema "notes", and its functions use its table "notes".
    const service = await t.boot({
      migrations: await t.folder(FILES),
      template: false,
      schemaPrefix: '',
    });
    await service.create('notes');
    await service.rename('notes', 'memo');
    await service.create('notes');
    for (const [i, call] of CALLS.entries()) {
      await t.admin.query(call.replace('{s}', 'memo'), [`memo ${i}`]);
    }
    expect(await notes('memo')).toEqual(CALLS.map((_, i) => `memo ${i}`));
    expect(await notes('notes')).toEqual([]);
  });

  it('clones a tenant with such functions: the copy writes into its own schema', async () => {
    const service = await t.boot({ migrations: await t.folder(FILES), template: false });
    await service.create('acme');
    await service.clone('acme', 'copy');
    for (const [i, call] of CALLS.entries()) {
      await t.admin.query(call.replace('{s}', 'tenant_copy'), [`copy ${i}`]);
    }
    expect(await notes('tenant_copy')).toEqual(CALLS.map((_, i) => `copy ${i}`));
    expect(await notes('tenant_acme')).toEqual([]);
  });

  it('refuses, naming the object, when something else names the schema as text', async () => {
    const service = await t.boot({
      migrations: await t.folder({
        ...FILES,
        // The schema's name kept as a string in a default: nothing the rename can re-point.
        '002_origin.sql': `
DO $$ BEGIN
  EXECUTE 'ALTER TABLE {{tables.notes}} ADD COLUMN origin text DEFAULT ' || quote_literal('{{schema}}');
END $$;
`,
      }),
      template: false,
    });
    await service.create('acme');
    const error = await service.rename('acme', 'acme_corp').catch((err: unknown) => err);
    expect(error).toBeInstanceOf(TenantRenameError);
    expect((error as Error).message).toMatch(
      /default of tenant_acme_corp\.origin|default of "?tenant_acme_corp"?\.notes\.origin/,
    );
    // Nothing changed: the tenant keeps its id and schema.
    expect((await service.get('acme'))?.id).toBe('acme');
    expect(await t.schemaOid('tenant_acme_corp')).toBeUndefined();
    expect(await t.schemaOid('tenant_acme')).toBeDefined();
  });
});
