// A pooled tenant's rows in and out of the export format: read from the shared tables under the
// tenant's scope (row-level security holds the read to its rows), written without the tenant
// column, so an export of either tier can be imported into either tier.
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { NO_SCOPE, scopeStatement, type RowScope } from '../../connection/row-scope.js';
import { tablesInInsertOrder, type CatalogTable } from '../../catalog/schema-tables.js';
import type { MigrationFile } from '../../migrations/migration-files.js';
import { MIGRATIONS_TABLE, readMigrationStatus } from '../../migrations/migration-history.js';
import type { TenantRegistry } from '../registry/tenant-registry.js';
import { lockTenant } from '../tenant-locks.js';
import { TenantAlreadyExistsError } from '../tenant.errors.js';
import { finishTenant, type TenantCopyProgress } from './tenant-copy-job.js';
import { TenantImportError } from './tenant-copy.errors.js';
import { qualifiedName, quoteIdentifier } from '../../shared/identifiers.js';
import type { ResolvedPooledTier } from '../tenant-tier.js';
import { columnList, selectList } from './copy-statements.js';
import type { TenantExportManifest } from './tenant-export-manifest.js';

/** Sets `scope` (or undoes it, with `NO_SCOPE`) for the rest of the open transaction. */
export async function setScope(client: pg.ClientBase, scope: RowScope): Promise<void> {
  const { text, values } = scopeStatement(scope);
  await client.query(text, values);
}

/**
 * The pooled schema's tables as a schema tenant has them: the tenant column left out. The
 * migration history (shared, not the tenant's) is kept, so the export lists the same tables.
 */
export async function pooledTables(
  client: pg.ClientBase,
  pooled: ResolvedPooledTier,
): Promise<CatalogTable[]> {
  const tables = await tablesInInsertOrder(client, pooled.schema);
  return tables.map((t) => {
    const keep = t.columns.map((c) => c !== pooled.column);
    return {
      name: t.name,
      columns: t.columns.filter((_, i) => keep[i]),
      localTypes: t.localTypes.filter((_, i) => keep[i]),
    };
  });
}

/**
 * Loads an export's rows into the pooled tables as tenant `id`'s, in the open transaction on
 * `client`. `COPY FROM` does not pass row-level security, so each file goes into a temporary
 * table first, then into the pooled table by an `INSERT … SELECT` under the tenant's scope (its
 * policy checks every row). The migration history is the pooled schema's own: not loaded.
 * Sequences are shared by every pooled tenant: they are only moved forward, never back.
 *
 * @returns per table, how many rows went in (a mismatch with the manifest is the caller's to refuse)
 */
async function loadPooledRows(
  client: pg.ClientBase,
  pooled: ResolvedPooledTier,
  id: string,
  dir: string,
  manifest: TenantExportManifest,
  onProgress?: (progress: TenantCopyProgress) => void,
): Promise<Map<string, number>> {
  const loaded = new Map<string, number>();
  const scope = { role: pooled.role, tenantId: id };
  for (const [i, t] of manifest.tables.entries()) {
    if (t.name !== MIGRATIONS_TABLE) {
      const staging = quoteIdentifier(`pgt_import_${i}`);
      const target = qualifiedName(pooled.schema, t.name);
      const columns = columnList(t.columns);
      await client.query(
        `CREATE TEMP TABLE ${staging} ON COMMIT DROP AS SELECT ${selectList(t.columns)} FROM ${target} WITH NO DATA`,
      );
      const stream = client.query(copyFrom(`COPY ${staging} ${columns} FROM STDIN`));
      await pipeline(createReadStream(join(dir, t.file)), createGunzip(), stream);
      await client.query(`GRANT SELECT ON ${staging} TO ${quoteIdentifier(pooled.role)}`);
      await setScope(client, scope);
      const inserted = await client.query(
        `INSERT INTO ${target} ${columns} OVERRIDING SYSTEM VALUE SELECT ${selectList(t.columns)} FROM ${staging}`,
      );
      await setScope(client, NO_SCOPE);
      loaded.set(t.name, inserted.rowCount ?? 0);
    }
    onProgress?.({ table: t.name, rows: t.rows, done: i + 1, total: manifest.tables.length });
  }
  for (const s of manifest.sequences.filter((q) => q.isCalled)) {
    await client.query(
      `SELECT setval($1::regclass, $2::bigint, true) FROM ${qualifiedName(pooled.schema, s.name)}
        WHERE last_value < $2::bigint OR (last_value = $2::bigint AND NOT is_called)`,
      [qualifiedName(pooled.schema, s.name), s.lastValue],
    );
  }
  return loaded;
}

/** What {@link importPooledRows} needs. */
export interface PooledImport {
  readonly registry: TenantRegistry;
  readonly pooled: ResolvedPooledTier;
  readonly dir: string;
  readonly manifest: TenantExportManifest;
  readonly tenant: { id: string; schema: string; metadata: Record<string, unknown> };
  readonly files: readonly MigrationFile[];
  readonly onProgress?: (progress: TenantCopyProgress) => void;
}

/**
 * An import into the pooled tier, in the open transaction on `client`: the tenant's row
 * (`provisioning`, under its lock), its rows in the shared tables, then `active`. The pooled
 * schema must be at the export's migration files, with the same tables and columns.
 *
 * @throws TenantAlreadyExistsError, TenantImportError
 */
export async function importPooledRows(client: pg.ClientBase, job: PooledImport): Promise<void> {
  const { registry, pooled, dir, manifest, tenant, files, onProgress } = job;
  const { id } = tenant;
  const applied = manifest.migrations.length;
  await lockTenant(client, tenant.schema);
  const { store } = registry;
  if (!(await store.insertProvisioning(client, { ...tenant, tier: 'pooled' }))) {
    throw new TenantAlreadyExistsError(id, (await store.one(id, client))?.status);
  }
  const at = (await readMigrationStatus(client, pooled.schema, files)).applied.length;
  if (at !== applied) {
    throw new TenantImportError(
      dir,
      'migrations',
      `the export was taken at ${applied} migration file(s) and the pooled schema ${pooled.schema} is at ${at}, so its rows do not fit the pooled tables. Import it into the schema tier (tier 'schema'), which migrates it, then move it to the pooled tier`,
    );
  }
  const built = (await pooledTables(client, pooled)).map(tableShape).sort();
  if (JSON.stringify(built) !== JSON.stringify(manifest.tables.map(tableShape).sort())) {
    throw new TenantImportError(
      dir,
      'schema',
      `the manifest lists other tables or columns than the pooled schema ${pooled.schema} has (without its ${pooled.column} column)`,
    );
  }
  const loaded = await loadPooledRows(client, pooled, id, dir, manifest, onProgress);
  for (const [name, rows] of loaded) {
    const expected = manifest.tables.find((t) => t.name === name)!.rows;
    if (rows !== expected) {
      throw new TenantImportError(
        dir,
        'corrupt',
        `table ${name} received ${rows} rows; the manifest says ${expected}`,
      );
    }
  }
  await finishTenant(client, registry, id, files, applied);
}

/** A table as `name(columns)`, for comparing table sets. */
function tableShape(t: { name: string; columns: readonly string[] }): string {
  return `${t.name}(${t.columns.join(',')})`;
}

/** What {@link clonePooledRows} needs. */
export interface PooledClone {
  readonly registry: TenantRegistry;
  readonly pooled: ResolvedPooledTier;
  readonly sourceId: string;
  readonly target: { id: string; schema: string; metadata: Record<string, unknown> };
  readonly files: readonly MigrationFile[];
  readonly onProgress?: (progress: TenantCopyProgress) => void;
}

/**
 * A clone of a pooled tenant into a new pooled tenant, in the open transaction on `client`
 * (whose snapshot the copy reads): the target's row (`provisioning`, under its lock), then each
 * table's rows read under the source's scope into a temporary table and inserted under the
 * target's, ids kept, then `active`. User triggers of the shared tables fire for the copied rows:
 * they cannot be paused for one tenant.
 *
 * @throws TenantAlreadyExistsError
 */
export async function clonePooledRows(client: pg.ClientBase, job: PooledClone): Promise<void> {
  const { registry, pooled, sourceId, target, files, onProgress } = job;
  await lockTenant(client, target.schema);
  const { store } = registry;
  if (!(await store.insertProvisioning(client, { ...target, tier: 'pooled' }))) {
    throw new TenantAlreadyExistsError(target.id, (await store.one(target.id, client))?.status);
  }
  const tables = (await pooledTables(client, pooled)).filter((t) => t.name !== MIGRATIONS_TABLE);
  for (const [i, t] of tables.entries()) {
    const staging = quoteIdentifier(`pgt_clone_${i}`);
    const columns = selectList(t.columns);
    await setScope(client, { role: pooled.role, tenantId: sourceId });
    await client.query(
      `CREATE TEMP TABLE ${staging} ON COMMIT DROP AS SELECT ${columns} FROM ${qualifiedName(pooled.schema, t.name)}`,
    );
    await setScope(client, { role: pooled.role, tenantId: target.id });
    const copied = await client.query(
      `INSERT INTO ${qualifiedName(pooled.schema, t.name)} ${columnList(t.columns)} OVERRIDING SYSTEM VALUE SELECT ${columns} FROM ${staging}`,
    );
    await setScope(client, NO_SCOPE);
    onProgress?.({ table: t.name, rows: copied.rowCount ?? 0, done: i + 1, total: tables.length });
  }
  const version = (await readMigrationStatus(client, pooled.schema, files)).applied.length;
  await finishTenant(client, registry, target.id, files, version);
}
