import type pg from 'pg';
import { qualifiedName, quoteIdentifier } from '../../shared/identifiers.js';
import { inTransaction } from '../../connection/sessions.js';
import { fingerprintDifference } from '../../catalog/fingerprints.js';
import { SchemaIntrospector } from '../../catalog/schema-introspector.js';
import { historyMismatch } from '../../catalog/schema-history.js';
import type { CatalogTable } from '../../catalog/schema-tables.js';
import { requalify } from '../../catalog/script-target.js';
import { holdTenantLock, lockTenant } from '../tenant-locks.js';
import type { TenantInfo } from '../registry/tenant-info.js';
import type { TenantRow } from '../registry/tenant-registry-store.js';
import { statesLeadingTo, type TenantStatus } from '../tenant-state.js';
import {
  columnList,
  copyFailure,
  pauseUserTriggers,
  setSequences,
  truncateAll,
} from './copy-statements.js';
import {
  finishTenant,
  startTenant,
  TenantCopyJob,
  type TenantCopyProgress,
} from './tenant-copy-job.js';
import { TenantCloneError, TenantRenameError } from './tenant-copy.errors.js';
import { PooledTierDisabledError } from '../pooled/pooled.errors.js';
import { clonePooledRows } from './pooled-transfer.js';
import { TenantAlreadyExistsError, TenantNotFoundError } from '../tenant.errors.js';

/** Options of `TenantService.clone()`. */
export interface CloneTenantOptions {
  /** The new tenant's metadata. Default: the source's. */
  metadata?: Record<string, unknown>;
  /** Called after each table. */
  onProgress?: (progress: TenantCopyProgress) => void;
}

/**
 * Cloning and renaming tenants. A clone replays the source's migration history into the new
 * schema (so tables, sequences, foreign keys, functions and triggers refer to the new schema),
 * checks that the result matches the source's catalog, then copies every row from one
 * consistent snapshot: all in one transaction, with the new tenant going `provisioning` →
 * `active` in it.
 */
export class TenantCopier extends TenantCopyJob {
  async clone(
    sourceId: string,
    targetId: string,
    options: CloneTenantOptions,
  ): Promise<TenantInfo> {
    const source = this.registry.schemaFor(sourceId);
    const target = this.registry.schemaFor(targetId);
    const files = await this.files();
    const session = await this.session('clone');
    const { client } = session;
    try {
      // The source's lock first, then the snapshot: no migration or drop of the source can
      // commit between the snapshot and the copy.
      const release = await holdTenantLock(client, source);
      try {
        await inTransaction(
          client,
          async () => {
            const row = await this.#servedRow(client, sourceId);
            if (row.tier === 'pooled') {
              if (!this.pooled) throw new PooledTierDisabledError();
              const metadata = options.metadata ?? row.metadata;
              return clonePooledRows(client, {
                registry: this.registry,
                pooled: this.pooled.options,
                sourceId,
                target: { id: targetId, schema: target, metadata },
                files,
                onProgress: options.onProgress,
              });
            }
            const from = new SchemaIntrospector(client, source);
            const history = await from.history();
            const mismatch = historyMismatch(history, files);
            if (mismatch) throw new Error(`the source's migration history ${mismatch}`);
            await startTenant(
              client,
              this.registry,
              this.runner,
              { id: targetId, schema: target, metadata: options.metadata ?? row.metadata },
              files.slice(0, history.length),
              this.beforeCreateSchema,
            );
            const difference = fingerprintDifference(
              await from.definitionFingerprint(),
              await new SchemaIntrospector(client, target).definitionFingerprint(),
            );
            if (difference) {
              throw new Error(
                `the source schema differs from what its migration history builds (changed outside migrations?): ${difference}`,
              );
            }
            const tables = await from.tables();
            await truncateAll(client, target, tables);
            const resumeTriggers = await pauseUserTriggers(client, target, tables);
            let done = 0;
            for (const t of tables) {
              const columns = columnList(t.columns);
              const copied = await client.query(
                `INSERT INTO ${qualifiedName(target, t.name)} ${columns} OVERRIDING SYSTEM VALUE
                 SELECT ${castList(t, source, target)} FROM ${qualifiedName(source, t.name)}`,
              );
              options.onProgress?.({
                table: t.name,
                rows: copied.rowCount ?? 0,
                done: ++done,
                total: tables.length,
              });
            }
            await resumeTriggers();
            await setSequences(client, target, await from.sequencePositions());
            await finishTenant(client, this.registry, targetId, files, history.length);
          },
          'BEGIN ISOLATION LEVEL REPEATABLE READ',
        );
      } finally {
        await release();
      }
    } catch (err) {
      if (err instanceof TenantAlreadyExistsError || err instanceof TenantNotFoundError) throw err;
      throw new TenantCloneError(sourceId, targetId, copyFailure(err), { cause: err });
    } finally {
      await session.close();
    }
    const entry = await this.registry.refresh(targetId);
    if (!entry) throw new TenantNotFoundError(targetId);
    return entry.info;
  }

  /**
   * Renames schema and registry row in one transaction. The row is deleted and inserted under the
   * new id (going `provisioning` → its former state), so every instance sees the old id deleted
   * — a versioned tombstone — and stops routing it within `maxStalenessMs`, like a drop.
   * Functions that name the old schema as text (body or `SET search_path`) are re-created for
   * the new one; anything else naming it as text makes the rename fail (`TenantRenameError`
   * naming the object) rather than keep reaching the old name.
   */
  async rename(oldId: string, newId: string): Promise<TenantInfo> {
    const from = this.registry.schemaFor(oldId);
    const to = this.registry.schemaFor(newId);
    const { store } = this.registry;
    const session = await this.session('rename');
    const { client } = session;
    try {
      await inTransaction(client, async () => {
        await lockTenant(client, from);
        await lockTenant(client, to);
        const row = await this.#servedRow(client, oldId, true);
        if (row.tier === 'pooled') throw new Error(pooledRefusal(oldId));
        if (!(await store.insertCopy(client, oldId, newId, to))) {
          const existing = await store.one(newId, client);
          throw new TenantAlreadyExistsError(newId, existing?.status);
        }
        try {
          await client.query(
            `ALTER SCHEMA ${quoteIdentifier(from)} RENAME TO ${quoteIdentifier(to)}`,
          );
        } catch (err) {
          if ((err as { code?: string }).code === '42P06') {
            throw new Error(`schema "${to}" already exists; it was left untouched`, { cause: err });
          }
          throw err;
        }
        await this.#repointFunctions(client, from, to);
        await store.deleteIf(oldId, null, client);
        await store.setStatus(newId, row.status, statesLeadingTo(row.status), client);
      });
    } catch (err) {
      if (err instanceof TenantAlreadyExistsError || err instanceof TenantNotFoundError) throw err;
      throw new TenantRenameError(oldId, newId, (err as Error).message, { cause: err });
    } finally {
      await session.close();
    }
    await this.registry.refresh(oldId).catch(() => undefined);
    const entry = await this.registry.refresh(newId);
    if (!entry) throw new TenantNotFoundError(newId);
    return entry.info;
  }

  /** The tenant's row if it is `active` or `suspended`. @throws TenantNotFoundError */
  async #servedRow(client: pg.ClientBase, id: string, forUpdate = false): Promise<TenantRow> {
    const row = await this.registry.store.one(id, client, forUpdate);
    const status: TenantStatus | undefined = row?.status;
    if (status !== 'active' && status !== 'suspended') throw new TenantNotFoundError(id);
    return row!;
  }

  /**
   * Re-creates the functions of schema `to` that still name schema `from` as text (body or
   * `SET search_path`), pointed at `to`; then refuses the rename if anything else still names
   * `from` as text (a trigger's argument, a string in a default, a check or a policy), since
   * it would go on reaching whatever schema has that name next.
   */
  async #repointFunctions(client: pg.ClientBase, from: string, to: string): Promise<void> {
    const renamed = new SchemaIntrospector(client, to);
    const script = await renamed.repointScript(from, to);
    if (script) await client.query(script);
    const left = await renamed.objectsNaming(from);
    if (left.length > 0) {
      throw new Error(
        `${left.join(', ')} still name${left.length === 1 ? 's' : ''} schema "${from}" as text, which the rename cannot re-point. Change ${left.length === 1 ? 'it' : 'them'} in a migration to use the schema's objects by name ({{schema}}.x), or create a new tenant and clone into it`,
      );
    }
  }
}

/**
 * Why a pooled tenant is refused a rename, and what to do instead. (Instances still routing the
 * old id for up to `maxStalenessMs` would write rows under it after the rows moved.)
 */
function pooledRefusal(id: string): string {
  return `tenant "${id}" is in the pooled tier, whose tenants cannot be renamed yet. Move it to the schema tier first (TenantService.moveTier), or clone it under the new id and drop it`;
}

/** The table's columns for a SELECT copying into `target`: types of the source schema cast. */
function castList(table: CatalogTable, source: string, target: string): string {
  return table.columns
    .map((column, i) => {
      const local = table.localTypes[i];
      const name = quoteIdentifier(column);
      return local === null
        ? name
        : `${name}::text::${requalify(local, source, quoteIdentifier(target))}`;
    })
    .join(', ');
}
