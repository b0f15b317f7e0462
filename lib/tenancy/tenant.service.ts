import { integerOption } from '../shared/option-values.js';
import type { SchemaDb } from '../core/schema-db.js';
import type { DrainController } from '../connection/drain-controller.js';
import { CitusTenancy, type MoveTenantOptions, type TenantPlacement } from './citus/citus.js';
import { moveToNode } from './citus/citus-move.js';
import type { TenantContext } from './routing/tenant-context.js';
import type { PooledTier } from './pooled/pooled-tier.js';
import type { TierMover } from './pooled/tier-move.js';
import type { MoveTierOptions, TierMoveResult } from './pooled/tier-move-options.js';
import { PooledTierDisabledError } from './pooled/pooled.errors.js';
import type { TenantTier } from './tenant-tier.js';
import {
  TenantFleetMigrator,
  type MigrateAllOptions,
  type TenantMigrationState,
  type TenantMigrationSummary,
} from './fleet/tenant-fleet-migrator.js';
import { TenantProvisioner, type TenantRepairResult } from './provisioning/tenant-provisioner.js';
import { TenantCopier, type CloneTenantOptions } from './transfer/tenant-copier.js';
import {
  TenantTransfer,
  type ExportTenantOptions,
  type ImportTenantOptions,
  type TenantExportResult,
} from './transfer/tenant-transfer.js';
import type { MigrationRolloutState } from './fleet/tenant-rollout-store.js';
import type { TenantInfo } from './registry/tenant-info.js';
import type { TenantRegistry } from './registry/tenant-registry.js';
import type { TenantTemplate } from './provisioning/tenant-template.js';
import { TenantNotFoundError } from './tenant.errors.js';
import { mapLimit } from './map-limit.js';
import {
  assertNoTransactionControl,
  execInTransaction,
  type TenantExecResult,
} from './tenant-exec.js';

/** @internal The parts a `TenantService` composes (see `tenancy-root.ts`). */
export interface TenantServiceParts {
  readonly registry: TenantRegistry;
  readonly context: TenantContext;
  readonly drain: DrainController | undefined;
  readonly provisioner: TenantProvisioner;
  readonly fleet: TenantFleetMigrator;
  readonly template: TenantTemplate | undefined;
  readonly copier: TenantCopier;
  readonly transfer: TenantTransfer;
  readonly citus: CitusTenancy;
  readonly pooled: PooledTier | undefined;
  readonly mover: TierMover | undefined;
}

/** Options of {@link TenantService.forEach}. */
export interface ForEachOptions {
  /** Tenants visited at once. Default: `4`. */
  concurrency?: number;
}

/**
 * Tenant lifecycle and per-tenant work outside requests. Inject it (`TenantService`) when
 * `tenancy` is configured; the CLI uses the same class. Lifecycle transitions are made by
 * `TenantProvisioner`, fleet migrations by `TenantFleetMigrator`; this class adds scoped
 * execution (`db`, `run`, `forEach`).
 *
 * @example
 * await tenants.create('acme', { metadata: { plan: 'pro' } });
 * await tenants.run('acme', () => projects.list());   // @InjectTenantDb() resolves to acme
 */
export class TenantService {
  readonly #registry: TenantRegistry;
  readonly #context: TenantContext;
  readonly #drain: DrainController | undefined;
  readonly #provisioner: TenantProvisioner;
  readonly #fleet: TenantFleetMigrator;
  readonly #template: TenantTemplate | undefined;
  readonly #copier: TenantCopier;
  readonly #transfer: TenantTransfer;
  readonly #citus: CitusTenancy;
  readonly #pooled: PooledTier | undefined;
  readonly #mover: TierMover | undefined;

  /** @internal Built by `createTenantService` (the module and the CLI both use it). */
  constructor(parts: TenantServiceParts) {
    this.#registry = parts.registry;
    this.#context = parts.context;
    this.#drain = parts.drain;
    this.#provisioner = parts.provisioner;
    this.#fleet = parts.fleet;
    this.#template = parts.template;
    this.#copier = parts.copier;
    this.#transfer = parts.transfer;
    this.#citus = parts.citus;
    this.#pooled = parts.pooled;
    this.#mover = parts.mover;
  }

  /**
   * Creates a tenant in one transaction: registry row, schema and every tenant migration file
   * with its history — all or nothing, also when the process dies midway. Files marked
   * `-- migrate:no-transaction` (and those after them) run after the commit while the tenant is
   * `provisioning` (not served); if one fails the error says so, and `repair` finishes it. A
   * schema that already exists is never adopted: creation fails and leaves it alone.
   * `tier: 'pooled'` places it in the shared tables of the pooled tier instead (its row only).
   *
   * @throws InvalidTenantIdError, TenantAlreadyExistsError, TenantCreationError, PooledTierDisabledError
   */
  async create(
    id: string,
    options: { metadata?: Record<string, unknown>; tier?: TenantTier } = {},
  ): Promise<TenantInfo> {
    return this.#provisioner.create(id, options.metadata ?? {}, options.tier);
  }

  /**
   * Drops a tenant: marks it `dropping` (refused on every instance within `maxStalenessMs`), waits
   * for its in-flight work (cancelling what outlives a few seconds), then drops its schema with
   * all data and deletes its row. Finishes a drop a crash interrupted.
   *
   * @throws TenantNotFoundError
   */
  drop(id: string): Promise<void> {
    return this.#provisioner.drop(id);
  }

  /**
   * Creates tenant `targetId` as a copy of `sourceId`: schema and data, from one consistent
   * snapshot (writes committed after it are not copied, none is seen half-done). The source's
   * migration history is replayed into the new schema, checked against the source's catalog
   * and copied with it; sequences keep their positions; foreign keys, functions and triggers
   * refer to the new schema. One transaction, in which the new tenant goes `provisioning` →
   * `active`: on any failure nothing is created. The source stays served throughout; its
   * migrations and drop wait for the copy. A `pooled` tenant is cloned into a new `pooled` tenant:
   * its rows copied under the new id in the shared tables, ids kept.
   *
   * @throws TenantNotFoundError (source), TenantAlreadyExistsError (target), TenantCloneError
   * @example
   * await tenants.clone('template-demo', 'acme', { metadata: { plan: 'trial' } });
   */
  clone(sourceId: string, targetId: string, options: CloneTenantOptions = {}): Promise<TenantInfo> {
    return this.#copier.clone(sourceId, targetId, options);
  }

  /**
   * Gives a tenant a new id, and its schema the matching name, in one transaction. Every
   * instance stops routing the old id (404) within `maxStalenessMs`, as after a drop, and serves
   * the new one; requests in flight on the old id finish or fail as `TenantNotFoundError`.
   * Functions whose bodies name the schema are rewritten. Only `active` and `suspended` tenants.
   *
   * @throws TenantNotFoundError, TenantAlreadyExistsError, TenantRenameError
   */
  rename(oldId: string, newId: string): Promise<TenantInfo> {
    return this.#copier.rename(oldId, newId);
  }

  /**
   * Writes tenant `id` to a new directory `path`, from one consistent snapshot: `manifest.json`
   * (format, migration history, catalog, per table its row count and SHA-256) and a gzipped COPY
   * file per table. The tenant stays served. `import()` reads it back, here or elsewhere.
   *
   * Missing parents of `path` are created; an existing `path` is refused, never written into.
   * @throws TenantNotFoundError, TenantExportError (what it wrote is removed)
   */
  export(id: string, path: string, options: ExportTenantOptions = {}): Promise<TenantExportResult> {
    return this.#transfer.export(id, path, options);
  }

  /**
   * Creates a tenant from an export directory, all or nothing: files are checked against their
   * checksums first, the export's migration history must match this application's first files
   * (newer exports are refused), those files are replayed, the catalog compared, rows loaded and
   * counted, and files newer than the export applied. The tenant is `active` when it returns.
   *
   * @throws TenantImportError (nothing created; `field` names a malformed manifest field),
   *   TenantAlreadyExistsError
   */
  import(path: string, options: ImportTenantOptions = {}): Promise<TenantInfo> {
    return this.#transfer.import(path, options);
  }

  /** Suspends a tenant: its requests are answered 403 until `resume()`. */
  suspend(id: string): Promise<TenantInfo> {
    return this.#provisioner.setStatus(id, 'suspended');
  }

  /** Lets a suspended tenant's requests through again. */
  resume(id: string): Promise<TenantInfo> {
    return this.#provisioner.setStatus(id, 'active');
  }

  /**
   * Finishes what a crash interrupted: a `provisioning` tenant gets its remaining migrations and
   * becomes `active` (a row without a schema is removed); a `dropping` tenant's schema and row
   * are removed; a move between tiers is finished when it had flipped (the old copy removed) and
   * undone otherwise (the new copy removed). Active and suspended tenants are otherwise left as they are.
   *
   * @throws TenantNotFoundError when there is no row, TenantMoveError while a move of it runs
   */
  async repair(id: string): Promise<TenantRepairResult> {
    const action = await this.#mover?.repair(id);
    if (!action) return this.#provisioner.repair(id);
    const status = (await this.get(id))?.status ?? null;
    return { tenantId: id, before: status, after: status, action };
  }

  /**
   * Moves tenant `id` to tier `to` while it serves: change capture on its old home, a snapshot
   * copy, catch-up, a write pause of well under a second for the final catch-up and the registry
   * flip (every instance routes it to the new home within `maxStalenessMs`; statements outside a
   * transaction, and transactions with `retries`, that reach the old home meanwhile are re-run on
   * the new one), and after `graceMs` the old copy removed. A crash at any step is finished or undone by `repair(id)`.
   *
   * @example
   * const { pauseMs } = await tenants.moveTier('acme', 'schema');
   * @throws TenantNotFoundError, TenantMoveError, PooledTierDisabledError
   */
  moveTier(id: string, to: TenantTier, options?: MoveTierOptions): Promise<TierMoveResult> {
    if (!this.#mover) return Promise.reject(new PooledTierDisabledError());
    return this.#mover.move(id, to, options);
  }

  /** The tenant as the table records it now (any state), or `null`. */
  async get(id: string): Promise<TenantInfo | null> {
    this.#registry.validate(id);
    const entry = await this.#registry.refresh(id);
    return entry?.info ?? null;
  }

  /**
   * Every tenant, ordered by id, read from the table: `active` and `suspended` ones, and those
   * `provisioning` or `dropping` (being created or dropped, or left so by a crash: see `repair`).
   */
  async list(): Promise<TenantInfo[]> {
    await this.#registry.reload();
    return this.#registry
      .entries()
      .map((e) => e.info)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * The manager of an active tenant, for work outside requests (jobs, queues).
   * @throws InvalidTenantIdError, TenantNotFoundError, TenantSuspendedError
   */
  async db(id: string): Promise<SchemaDb> {
    return (await this.#registry.require(id)).db;
  }

  /**
   * Runs `sql` (statements with `{{tables.x}}`/`{{schema}}` placeholders) in tenant `id` in one
   * transaction: where it fails, nothing of it is kept. Text that begins, ends or splits a
   * transaction itself is refused before the tenant is touched. Returns the last result.
   * A pooled tenant's text runs under the pooled tier's role, held to the tenant's rows.
   * @throws TenantExecTransactionControlError, TenantNotFoundError, TenantSuspendedError
   */
  async exec(id: string, sql: string): Promise<TenantExecResult> {
    assertNoTransactionControl(sql);
    return execInTransaction(await this.db(id), sql, this.#pooled?.options.role);
  }

  /**
   * Runs `fn` with tenant `id` as the ambient tenant, so `@InjectTenantDb()` resolves to it.
   * During graceful shutdown a job already running finishes; a new one is refused with
   * `DatabaseShuttingDownError`. A failure because the tenant was dropped meanwhile is a
   * `TenantNotFoundError`. Inside a request or another `run()` (for any tenant), it joins that
   * work: `id` is current for `fn` only, and replica reads on either side see the other's writes.
   */
  async run<T>(id: string, fn: () => T | Promise<T>): Promise<T> {
    const entry = await this.#registry.require(id);
    try {
      return await this.#admitted(() => this.#context.run({ tenantId: id, db: entry.db }, fn));
    } catch (err) {
      throw await this.#registry.vanishedTenantError(id, err);
    }
  }

  /**
   * Calls `fn` for every active tenant, at most `concurrency` at once, each inside that tenant's
   * context. Visits every tenant even when some fail, then rejects with an `AggregateError`.
   */
  async forEach(
    fn: (db: SchemaDb, tenant: TenantInfo) => Promise<void> | void,
    options: ForEachOptions = {},
  ): Promise<void> {
    const concurrency = integerOption(options.concurrency ?? 4, 'forEach concurrency', 1);
    const active = this.#registry.entries().filter((e) => e.info.status === 'active');
    const errors: Error[] = [];
    await this.#admitted(() =>
      mapLimit(active, concurrency, async (entry) => {
        try {
          await this.#context.run({ tenantId: entry.info.id, db: entry.db }, () =>
            fn(entry.db, entry.info),
          );
        } catch (err) {
          errors.push(
            new Error(`Tenant ${entry.info.id}: ${(err as Error).message}`, { cause: err }),
          );
        }
      }),
    );
    if (errors.length > 0)
      throw new AggregateError(errors, `forEach failed for ${errors.length} tenant(s)`);
  }

  /**
   * Applies pending tenant migrations to every tenant (or `tenants`), `concurrency` at a time,
   * each under its tenant's lock with its row re-read under it: a tenant dropped meanwhile is
   * skipped and reported in `gone`, never re-created. Tenants the registry records as up to date
   * with unchanged files are skipped without touching their schema, so a no-op run over
   * thousands of tenants costs one query. One tenant's failure does not stop the others; the
   * summary lists it and the registry keeps its error for the fleet view. Then the template
   * schema that `create()` copies is brought to the same files (see `tenancy.template`).
   *
   * A fleet migration runs in waves: `canary` tenants go first (wave 0) and any failure among
   * them stops the run before wave 1; the rest go `waveSize` at a time; `stopAfterFailures` stops starting new
   * tenants after that many failures; `retryFailed` migrates only the tenants whose last attempt
   * at these files failed. Each wave's outcomes are recorded in the rollout, the registry
   * schema's record of these files (`tenant_rollouts`, `tenant_rollout_outcomes`), so a rerun
   * resumes where a run stopped:
   * tenants done are skipped, those not attempted come first, earlier failures last.
   *
   * @throws CitusMigrationError on Citus, before any tenant is migrated, when a tenant migration
   *   file holds what Citus refuses on a distributed schema.
   *
   * @example
   * await tenants.migrateAll({ canary: ['internal', 'beta'], waveSize: 500, stopAfterFailures: 3 });
   */
  async migrateAll(options: MigrateAllOptions = {}): Promise<TenantMigrationSummary> {
    await this.#citus.beforeMigrateAll(() => this.#registry.store.appliedByAll());
    const summary = await this.#fleet.migrateAll(options);
    // On Citus tenants are built by replay (see CitusTenancy.beforeCreateSchema): no template.
    if (this.#template && (await this.#citus.state()).version === null)
      await this.#template.update();
    return summary;
  }

  /**
   * The latest rollout (set of files migrated over the fleet) as the registry records it: its
   * state (`running`, `stopped` with the reason, `finished`) and per wave how many tenants were
   * applied, up to date, failed or gone. `null` before the first `migrateAll()`.
   */
  migrationRollout(): Promise<MigrationRolloutState | null> {
    return this.#fleet.rolloutStatus();
  }

  /** The fleet view: per tenant, its status, version, pending count, edited files, last failure, and wave and outcome in the latest rollout. */
  migrationStatus(tenants?: readonly string[]): Promise<TenantMigrationState[]> {
    return this.#fleet.migrationStatus(tenants);
  }

  /**
   * Where each tenant (or each of `tenants`) lives on a Citus cluster: whether its schema is
   * distributed and the `host:port` of the worker holding it. Without Citus every tenant is
   * reported local. One catalog query.
   */
  async placements(tenants?: readonly string[]): Promise<TenantPlacement[]> {
    const rows = await this.#registry.store.all(tenants);
    return this.#citus.placements(rows.map((r) => ({ id: r.id, schema: r.schema_name })));
  }

  /**
   * Makes an existing tenant's schema a Citus distributed schema (`citus_schema_distribute`),
   * so that it can be placed and moved; tenants created with `tenancy.citus` on already are.
   * Returns `false` when it already was. Its tables must not reference tables of other schemas.
   *
   * @throws TenantNotFoundError, CitusUnavailableError
   */
  async distribute(id: string): Promise<boolean> {
    const schema = (await this.#row(id)).schema_name;
    return this.#citus.distribute(schema);
  }

  /**
   * Moves a distributed tenant to another node of the Citus cluster (`citus_schema_move`), online:
   * with the default `mode: 'force_logical'` its reads and writes continue while its tables are
   * copied. Resolves once Citus has switched the tenant over; `false` when it was already there.
   *
   * @example
   * await tenants.move('acme', '10.0.0.12:5432', { onProgress: (p) => log(p.copiedBytes) });
   * @throws TenantNotFoundError, TenantPlacementError, CitusUnavailableError
   */
  async move(id: string, to: string, options: MoveTenantOptions = {}): Promise<boolean> {
    const row = await this.#row(id);
    return moveToNode(this.#citus, id, row.schema_name, to, options);
  }

  async #row(id: string) {
    this.#registry.validate(id);
    const row = await this.#registry.store.one(id);
    if (!row) throw new TenantNotFoundError(id);
    return row;
  }

  async #admitted<T>(fn: () => T | Promise<T>): Promise<T> {
    return this.#drain ? this.#drain.admit(async () => fn()) : fn();
  }
}
