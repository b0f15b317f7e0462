import { namesSchema, repointFunctionDef } from '../../../lib/catalog/schema-references.js';
import { TARGET } from '../../../lib/catalog/script-target.js';

const def = (header: string, body: string) =>
  `CREATE OR REPLACE FUNCTION "tenant_acme_corp".f(t text)\n RETURNS void\n LANGUAGE plpgsql\n${header}AS $function$${body}$function$\n`;

describe('repointFunctionDef', () => {
  it.each([
    [" SET search_path TO 'tenant_acme'\n", ' SET search_path TO "tenant_acme_corp"\n'],
    [
      " SET search_path TO 'pg_catalog', 'tenant_acme', 'public'\n SET work_mem TO '64MB'\n",
      ` SET search_path TO 'pg_catalog', "tenant_acme_corp", 'public'\n SET work_mem TO '64MB'\n`,
    ],
  ])('re-points SET search_path element by element: %j', (header, expected) => {
    expect(repointFunctionDef(def(header, ' '), 'tenant_acme', 'tenant_acme_corp')).toBe(
      def(expected, ' '),
    );
  });

  it.each([
    [
      'INSERT INTO "tenant_acme".notes VALUES (t);',
      'INSERT INTO "tenant_acme_corp".notes VALUES (t);',
    ],
    ['INSERT INTO tenant_acme.notes VALUES (t);', 'INSERT INTO tenant_acme_corp.notes VALUES (t);'],
    [
      "PERFORM set_config('search_path', 'tenant_acme, public', true);",
      "PERFORM set_config('search_path', 'tenant_acme_corp, public', true);",
    ],
    ['SET search_path = tenant_acme;', 'SET search_path = tenant_acme_corp;'],
    // Longer names and other objects of the same name are left alone.
    [
      'INSERT INTO "tenant_acme"."tenant_acme" VALUES (t);',
      'INSERT INTO "tenant_acme_corp"."tenant_acme" VALUES (t);',
    ],
    [
      'INSERT INTO tenant_acme_log.notes VALUES (t);',
      'INSERT INTO tenant_acme_log.notes VALUES (t);',
    ],
    ['INSERT INTO tenant_acme (body) VALUES (t);', 'INSERT INTO tenant_acme (body) VALUES (t);'],
  ])('re-points the body: %s', (body, expected) => {
    expect(repointFunctionDef(def('', body), 'tenant_acme', 'tenant_acme_corp')).toBe(
      def('', expected),
    );
  });

  it('points a quoted template name at the script placeholder, in the body and SET list', () => {
    const out = repointFunctionDef(
      `CREATE OR REPLACE FUNCTION "t$template".f()\n RETURNS void\n LANGUAGE sql\n SET search_path TO 't$template'\nAS $function$ SELECT 1 FROM "t$template".x $function$\n`,
      't$template',
      TARGET,
    );
    expect(out).not.toContain('t$template');
    expect(out.split(TARGET)).toHaveLength(4);
  });

  it('namesSchema finds the name quoted or as a word of its own', () => {
    expect(namesSchema('search_path=tenant_acme', 'tenant_acme')).toBe(true);
    expect(namesSchema('x "tenant_acme".y', 'tenant_acme')).toBe(true);
    expect(namesSchema('tenant_acme_corp.y', 'tenant_acme')).toBe(false);
  });
});
