// A pooled tenant's upserts: `ON CONFLICT (…)` of an INSERT into a pooled table gets the tenant
// column first, so it infers the per-tenant key; nothing else in the text changes.
import { withTenantInConflictTargets } from '../../../../lib/core/sql/conflict-target.js';
import { SqlTemplate, SqlTemplateCache } from '../../../../lib/core/sql/sql-template.js';

const P = '"tenancy_pooled".';
const add = (sql: string) => withTenantInConflictTargets(sql, P, 'tenant_id');

describe('withTenantInConflictTargets', () => {
  it.each([
    [
      'INSERT INTO "tenancy_pooled"."users" (email, name) VALUES ($1, $2) ON CONFLICT (email) DO UPDATE SET name = EXCLUDED.name',
      'INSERT INTO "tenancy_pooled"."users" (email, name) VALUES ($1, $2) ON CONFLICT ("tenant_id", email) DO UPDATE SET name = EXCLUDED.name',
    ],
    // Kysely's compiled form: lower case, quoted names, an alias.
    [
      'insert into "tenancy_pooled"."users" as "u" ("email") values ($1) on conflict ("email") do nothing',
      'insert into "tenancy_pooled"."users" as "u" ("email") values ($1) on conflict ("tenant_id", "email") do nothing',
    ],
    // An expression index and a partial one.
    [
      'INSERT INTO "tenancy_pooled"."slugs" (slug) VALUES ($1) ON CONFLICT ((lower(slug))) WHERE live DO NOTHING',
      'INSERT INTO "tenancy_pooled"."slugs" (slug) VALUES ($1) ON CONFLICT ("tenant_id", (lower(slug))) WHERE live DO NOTHING',
    ],
    // Inside a CTE, and over several lines.
    [
      'WITH n AS (\n  INSERT INTO "tenancy_pooled"."t" (a) VALUES (1)\n  ON CONFLICT\n (a, b) DO NOTHING RETURNING a\n) SELECT * FROM n',
      'WITH n AS (\n  INSERT INTO "tenancy_pooled"."t" (a) VALUES (1)\n  ON CONFLICT\n ("tenant_id", a, b) DO NOTHING RETURNING a\n) SELECT * FROM n',
    ],
    // Two statements, each its own.
    [
      'INSERT INTO "tenancy_pooled"."a" (x) VALUES (1) ON CONFLICT (x) DO NOTHING; INSERT INTO "tenancy_pooled"."b" (y) VALUES (2) ON CONFLICT (y) DO NOTHING',
      'INSERT INTO "tenancy_pooled"."a" (x) VALUES (1) ON CONFLICT ("tenant_id", x) DO NOTHING; INSERT INTO "tenancy_pooled"."b" (y) VALUES (2) ON CONFLICT ("tenant_id", y) DO NOTHING',
    ],
  ])('adds the tenant column: %s', (sql, expected) => {
    expect(add(sql)).toBe(expected);
  });

  it.each([
    // Another schema's table: its keys are its own.
    'INSERT INTO public.audit (id) VALUES (1) ON CONFLICT (id) DO NOTHING',
    // The pooled statement ended; the next INSERT is not into a pooled table.
    'INSERT INTO "tenancy_pooled"."a" (x) VALUES (1); INSERT INTO public.b (id) VALUES (1) ON CONFLICT (id) DO NOTHING',
    // Already names the column, quoted or not.
    'INSERT INTO "tenancy_pooled"."u" (email) VALUES ($1) ON CONFLICT (tenant_id, email) DO NOTHING',
    'INSERT INTO "tenancy_pooled"."u" (email) VALUES ($1) ON CONFLICT (email, "tenant_id") DO NOTHING',
    // No column list to infer from.
    'INSERT INTO "tenancy_pooled"."u" (email) VALUES ($1) ON CONFLICT ON CONSTRAINT u_email_key DO NOTHING',
    'INSERT INTO "tenancy_pooled"."u" (email) VALUES ($1) ON CONFLICT DO NOTHING',
    // Not SQL: a string, a comment, a dollar-quoted body.
    `INSERT INTO "tenancy_pooled"."notes" (body) VALUES ('ON CONFLICT (x)') -- ON CONFLICT (y)`,
    `INSERT INTO "tenancy_pooled"."notes" (body) VALUES ($$ on conflict (z) $$)`,
  ])('leaves alone: %s', (sql) => {
    expect(add(sql)).toBe(sql);
  });

  it("is what a pooled template's expansion does, and only a pooled template's", () => {
    const cache = new SqlTemplateCache();
    const upsert =
      'INSERT INTO {{tables.users}} (email) VALUES ($1) ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email';
    const pooled = new SqlTemplate('tenancy_pooled', cache, 'tenant_id');
    const shared = new SqlTemplate('tenancy_pooled', cache);
    const rewritten =
      'INSERT INTO "tenancy_pooled"."users" (email) VALUES ($1) ON CONFLICT ("tenant_id", email) DO UPDATE SET email = EXCLUDED.email';
    // Both orders: the shared cache keeps the two expansions apart.
    expect(shared.expand(upsert)).toBe(
      upsert.replace('{{tables.users}}', '"tenancy_pooled"."users"'),
    );
    expect(pooled.expand(upsert)).toBe(rewritten);
    expect(pooled.expand(upsert)).toBe(rewritten);
    expect(shared.expand(upsert)).not.toContain('tenant_id');
    // A statement built with the qualified names (insertMany's).
    const built =
      'INSERT INTO "tenancy_pooled"."users" (email) VALUES ($1) ON CONFLICT (email) DO NOTHING';
    expect(pooled.withTenantKeys(built)).toContain('ON CONFLICT ("tenant_id", email)');
    expect(shared.withTenantKeys(built)).toBe(built);
  });
});
