import { createHash } from 'node:crypto';
import { TenantCreationError } from '../../../../lib/index.js';
import { MigrationRunner } from '../../../../lib/migrations/index.js';
import { useTenancyApps } from '../../../support/tenancy-apps.js';

const REGISTRY = 'reg_dep';
const TEMPLATE = `${REGISTRY}$template`;

// Files whose effect depends on the schema's name while they run: a DO block branching on it
// (refusing one tenant, storing a value computed from the name) and an INSERT … SELECT calling a
// function of the schema that uses the name.
const FILES: Record<string, string> = {
  '001_settings.sql': `
CREATE TABLE {{tables.settings}} (key text PRIMARY KEY, value text NOT NULL);
INSERT INTO {{tables.settings}} (key, value) VALUES ('plan', 'free');
CREATE FUNCTION {{schema}}.code() RETURNS text LANGUAGE sql AS $$ SELECT md5('{{schema}}') $$;
`,
  '002_per_tenant.sql': `
DO $$
BEGIN
  IF '{{schema}}' = '"tenant_blocked"' THEN
    RAISE EXCEPTION 'this migration refuses tenant "blocked"';
  END IF;
  INSERT INTO {{tables.settings}} (key, value) VALUES ('name_length', length('{{schema}}')::text);
END
$$;
`,
  '003_code.sql': `INSERT INTO {{tables.settings}} (key, value) SELECT 'code', {{schema}}.code();\n`,
  '004_more.sql': 'CREATE TABLE {{tables.more}} (id int);\n',
};

describe('template: files that run schema-dependent code are replayed per tenant', () => {
  const t = useTenancyApps(REGISTRY);

  const settings = async (schema: string) =>
    Object.fromEntries(
      (
        await t.admin.query<{ key: string; value: string }>(
          `SELECT key, value FROM "${schema}".settings`,
        )
      ).rows.map((r) => [r.key, r.value]),
    );
  const expectedFor = (schema: string) => ({
    plan: 'free',
    name_length: String(`"${schema}"`.length),
    code: createHash('md5').update(`"${schema}"`).digest('hex'),
  });

  it.each([
    ['a spare', {}],
    ['a copy', { templateSpares: 0 }],
  ])('copies the files before the first one and replays the rest (%s)', async (_, options) => {
    const service = await t.boot({ migrations: await t.folder(FILES), ...options });
    // The template holds only what is the same in every schema, and start-up says why.
    expect(await t.history(TEMPLATE)).toEqual(['001_settings.sql']);
    expect(t.logs.join('\n')).toMatch(
      /up to the file before 002_per_tenant\.sql.*depends on the schema's name \(line 2: a DO/,
    );
    await service.create('acme');
    await service.create('globex');
    for (const schema of ['tenant_acme', 'tenant_globex']) {
      expect(await settings(schema)).toEqual(expectedFor(schema));
      expect(await t.history(schema)).toEqual(Object.keys(FILES));
    }
    expect(t.warnings).toEqual([]);
  });

  it('rebuilds a template that an earlier release migrated past such a file', async () => {
    const migrations = await t.folder(FILES);
    // What a release that did not detect them left: the template holding every file.
    const quiet = { log: () => undefined, error: () => undefined, warn: () => undefined };
    const runner = new MigrationRunner(
      { connectionString: t.database.current.url },
      { logger: quiet },
    );
    await runner.migrate(TEMPLATE, migrations);
    expect(await t.history(TEMPLATE)).toHaveLength(4);
    const service = await t.boot({ migrations, templateSpares: 0 });
    expect(await t.history(TEMPLATE)).toEqual(['001_settings.sql']);
    await service.create('acme');
    expect(await settings('tenant_acme')).toEqual(expectedFor('tenant_acme'));
    expect(t.warnings).toEqual([]);
  });

  it('fails the create of a tenant a file refuses, as a replay does, and leaves nothing', async () => {
    const service = await t.boot({ migrations: await t.folder(FILES) });
    const error = await service.create('blocked').catch((err: unknown) => err);
    expect(error).toBeInstanceOf(TenantCreationError);
    expect((error as Error).message).toMatch(/002_per_tenant\.sql[\s\S]*refuses tenant "blocked"/);
    expect(await service.get('blocked')).toBeNull();
    expect(await t.schemaOid('tenant_blocked')).toBeUndefined();
    // Others are created as before.
    await service.create('fine');
    expect(await settings('tenant_fine')).toEqual(expectedFor('tenant_fine'));
  });
});
