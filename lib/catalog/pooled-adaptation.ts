// The pooled tier's tables are made by the tenant migration files, unchanged; after each file
// this adapts what the file made for sharing by tenants, from the catalog alone: a tenant column,
// row-level security with one policy, per-tenant keys, composite foreign keys and grants to the
// managed role. What cannot be shared safely is refused by name before anything changes.
import type pg from 'pg';
import { assertIdentifier, qualifiedName, quoteIdentifier } from '../shared/identifiers.js';
import { PooledAdaptationError } from './pooled-adaptation.errors.js';
import { missingGrants, readPooledCatalog, type PooledCatalog } from './pooled-catalog.js';
import { planKeys } from './pooled-keys.js';

/** How {@link adaptPooledSchema} adapts a schema. */
export interface PooledAdaptationOptions {
  /** The tenant column added to every table. Default: `'tenant_id'` (set by the caller). */
  readonly column: string;
  /** The managed `NOLOGIN NOBYPASSRLS` role pooled queries run as; it is granted what they need. */
  readonly role: string;
}

/** What one {@link adaptPooledSchema} run changed (all empty when the schema was adapted already). */
export interface PooledAdaptationReport {
  /** Tables that got the tenant column. */
  readonly columnsAdded: readonly string[];
  /** Tables whose row-level security was turned on (or forced) by this run. */
  readonly rowSecurityEnabled: readonly string[];
  /** Tables among those that had the tenancy policy already: a later file had turned RLS off. */
  readonly rowSecurityRestored: readonly string[];
  /** Tables that got the tenancy policy. */
  readonly policiesCreated: readonly string[];
  /** Primary keys, unique constraints and unique indexes rebuilt per tenant: `table.name`. */
  readonly keysRebuilt: readonly string[];
  /** Foreign keys re-created over the tenant column: `table.name`. */
  readonly foreignKeysRebuilt: readonly string[];
  /** Views switched to `security_invoker = true`, so the tenancy policy applies through them. */
  readonly viewsMadeInvoker: readonly string[];
}

/** The name of the policy each pooled table gets. */
const POOLED_POLICY = 'tenant_isolation';

/** The setting that carries the transaction's tenant (`set_config(…, true)`). */
const TENANT_SETTING = 'tenancy.tenant_id';
/**
 * The current tenant, or NULL when none is set. `current_setting(…, true)` alone is not enough:
 * once a session has set the parameter, it reads as '' (not NULL) in later transactions.
 */
const CURRENT_TENANT = `NULLIF(pg_catalog.current_setting('${TENANT_SETTING}', true), '')`;
/** How PostgreSQL deparses {@link CURRENT_TENANT}, for recognising what an earlier run made. */
const CURRENT_TENANT_DEPARSED = `NULLIF(current_setting('${TENANT_SETTING}'::text, true), ''::text)`;

/**
 * Adapts every table of the pooled `schema` for sharing by tenants, from the catalog: for each
 * ordinary table, the tenant column (`text NOT NULL`, defaulting to the transaction's tenant),
 * row-level security enabled and forced with one policy on the tenant, primary keys, unique
 * constraints and unique indexes rebuilt with the tenant column first (same names), foreign keys
 * inside the schema made composite over it, views made `security_invoker`; then grants the
 * managed role what pooled queries need. Idempotent: a second run changes nothing, and a run
 * after another migration file adapts only what that file added. Runs in the caller's open
 * transaction on `client` (the migration file's), so a refusal leaves nothing of the file.
 *
 * @example
 * await client.query('BEGIN');
 * await client.query(fileSql);
 * const report = await adaptPooledSchema(client, 'tenancy_pooled', { column: 'tenant_id', role: 'tenancy_pooled_role' });
 * await client.query('COMMIT');
 *
 * @throws PooledAdaptationError naming the first object that cannot be shared safely.
 */
export async function adaptPooledSchema(
  client: pg.ClientBase,
  schema: string,
  options: PooledAdaptationOptions,
): Promise<PooledAdaptationReport> {
  const { column, role } = options;
  assertIdentifier(column, 'tenant column');
  assertIdentifier(role, 'role');
  const catalog = await readPooledCatalog(client, schema, column);
  const refuse = (
    object: string,
    refusal: PooledAdaptationError['refusal'],
    reason: string,
  ): never => {
    throw new PooledAdaptationError(schema, object, refusal, reason);
  };
  refuseUnshareable(catalog, column, refuse);
  const keyPlan = planKeys(schema, catalog, column, (v) => client.escapeLiteral(v));
  const tables = catalog.relations.filter((r) => r.kind === 'r');
  const report = {
    columnsAdded: [] as string[],
    rowSecurityEnabled: [] as string[],
    rowSecurityRestored: [] as string[],
    policiesCreated: [] as string[],
    keysRebuilt: keyPlan.keys,
    foreignKeysRebuilt: keyPlan.foreignKeys,
    viewsMadeInvoker: [] as string[],
  };

  for (const t of tables) {
    const name = qualifiedName(schema, t.name);
    if (!catalog.tenantColumns.has(t.name)) {
      const { rowCount } = await client.query(`SELECT 1 FROM ${name} LIMIT 1`);
      if (rowCount !== 0) {
        refuse(
          t.name,
          'rows',
          `the table holds rows but no tenant column "${column}", so their tenant cannot be known. Insert rows per tenant at run time (after the tenant is created), not in tenant migration files: the pooled schema runs each file once for all its tenants.`,
        );
      }
      await client.query(
        `ALTER TABLE ${name} ADD COLUMN ${quoteIdentifier(column)} text NOT NULL DEFAULT ${CURRENT_TENANT}`,
      );
      report.columnsAdded.push(t.name);
    }
    const policy = catalog.policies.find((p) => p.table === t.name && p.name === POOLED_POLICY);
    if (!t.rowSecurity || !t.forceRowSecurity) {
      await client.query(`ALTER TABLE ${name} ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY`);
      report.rowSecurityEnabled.push(t.name);
      if (policy !== undefined) report.rowSecurityRestored.push(t.name);
    }
    if (policy === undefined) {
      const expression = `${quoteIdentifier(column)} = ${CURRENT_TENANT}`;
      await client.query(
        `CREATE POLICY ${quoteIdentifier(POOLED_POLICY)} ON ${name} AS PERMISSIVE FOR ALL TO PUBLIC` +
          ` USING (${expression}) WITH CHECK (${expression})`,
      );
      report.policiesCreated.push(t.name);
    }
  }
  for (const statement of keyPlan.statements) await client.query(statement);
  for (const v of catalog.relations.filter((r) => r.kind === 'v')) {
    if (!v.invoker) {
      await client.query(
        `ALTER VIEW ${qualifiedName(schema, v.name)} SET (security_invoker = true)`,
      );
      report.viewsMadeInvoker.push(v.name);
    }
  }
  await grant(client, schema, role);
  return report;
}

/** Refuses what row-level security cannot cover: checked before anything is changed. */
function refuseUnshareable(
  catalog: PooledCatalog,
  column: string,
  refuse: (object: string, refusal: PooledAdaptationError['refusal'], reason: string) => never,
): void {
  const expectedDefault = CURRENT_TENANT_DEPARSED;
  for (const r of catalog.relations) {
    if (r.kind === 'p') {
      refuse(
        r.name,
        'relation',
        'partitioned tables are not adapted for the pooled tier (their partitions would each need the tenant column, policy and keys). Keep partitioned tables out of the tenant migrations, or use the schema tier.',
      );
    }
    if (r.kind === 'm') {
      refuse(
        r.name,
        'relation',
        "a materialized view has no row-level security, so every tenant would read every tenant's rows. Use a view, or a table the app fills per tenant.",
      );
    }
    if (r.kind === 'f') {
      refuse(
        r.name,
        'relation',
        'a foreign table has no row-level security. Put it in a shared schema instead.',
      );
    }
    if (r.kind === 'v' && catalog.serverVersion < 150000) {
      refuse(
        r.name,
        'relation',
        "a view runs with its owner's rights, which bypass row-level security, and this PostgreSQL (before 15) has no security_invoker views. Use PostgreSQL 15+, or query the tables directly.",
      );
    }
    const state = catalog.tenantColumns.get(r.name);
    if (
      r.kind === 'r' &&
      state !== undefined &&
      (state.type !== 'text' ||
        !state.notNull ||
        state.special ||
        state.defaultExpr !== expectedDefault)
    ) {
      refuse(
        `${r.name}.${column}`,
        'column',
        `the table has its own column "${column}" (${state.type}${state.notNull ? ' NOT NULL' : ''}), not the tenant column the library adds. Rename the column, or choose another tenant column name.`,
      );
    }
  }
  const expectedPolicy = `(${catalog.deparsedColumn} = ${CURRENT_TENANT_DEPARSED})`;
  for (const p of catalog.policies) {
    if (
      p.name === POOLED_POLICY &&
      (!p.permissive ||
        p.command !== '*' ||
        p.roles.length !== 1 ||
        p.roles[0] !== 0 ||
        p.using !== expectedPolicy ||
        p.check !== expectedPolicy)
    ) {
      refuse(
        `${p.table}.${p.name}`,
        'policy',
        "a policy of this name exists with another definition than the tenancy policy the library makes. Rename or drop the file's policy.",
      );
    }
    if (p.permissive && p.name !== POOLED_POLICY) {
      refuse(
        `${p.table}.${p.name}`,
        'policy',
        'permissive policies are combined with OR, so this one would widen what a tenant sees beyond its own rows. Make it AS RESTRICTIVE, or drop it.',
      );
    }
  }
  for (const f of catalog.securityDefiners) {
    refuse(
      f,
      'function',
      "a SECURITY DEFINER function runs with its owner's rights, which bypass row-level security. Make it SECURITY INVOKER, or move it to a shared schema.",
    );
  }
  for (const k of catalog.inboundKeys) {
    refuse(
      k,
      'reference',
      "a foreign key from outside the pooled schema into it would let a shared row point at any tenant's row. Drop it; keep references from the pooled schema to shared tables only.",
    );
  }
}

/**
 * Grants the managed role what pooled queries need, only where it lacks it: a GRANT that changes
 * nothing still rewrites the catalog row, after every migration file. Never TRUNCATE, which
 * row-level security does not filter.
 */
async function grant(client: pg.ClientBase, schema: string, role: string): Promise<void> {
  const to = quoteIdentifier(role);
  const nsp = quoteIdentifier(schema);
  const missing = await missingGrants(client, schema, role);
  const qualified = (names: readonly string[]) =>
    names.map((n) => qualifiedName(schema, n)).join(', ');
  if (missing.schema) await client.query(`GRANT USAGE ON SCHEMA ${nsp} TO ${to}`);
  // Named one by one: ALL TABLES IN SCHEMA would include the migration history table.
  if (missing.tables.length > 0) {
    await client.query(
      `GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE ${qualified(missing.tables)} TO ${to}`,
    );
  }
  if (missing.sequences.length > 0) {
    await client.query(`GRANT USAGE, SELECT ON SEQUENCE ${qualified(missing.sequences)} TO ${to}`);
  }
  if (missing.routines)
    await client.query(`GRANT EXECUTE ON ALL ROUTINES IN SCHEMA ${nsp} TO ${to}`);
}
