// Moving a tenant between the schema and pooled tiers while it serves: change capture on the old
// home, a snapshot copy, catch-up, a short write pause for the flip, and the old copy removed
// after a grace period. Every step is recorded, so `repair` finishes or undoes a move a crash cut.
import type pg from 'pg';
import { inTransaction, openSession, type SessionTracker } from '../../connection/sessions.js';
import { withoutTimeouts } from '../../connection/pool-options.js';
import { quoteIdentifier } from '../../shared/identifiers.js';
import type { MigrationFile } from '../../migrations/migration-files.js';
import type { MigrationRunner } from '../../migrations/migration-runner.js';
import { ADVISORY_LOCK_NAMESPACE } from '../../migrations/migration-lock.js';
import type { TenantRegistry } from '../registry/tenant-registry.js';
import { lockTenant } from '../tenant-locks.js';
import { migrationsDigest } from '../tenant-migrations-digest.js';
import { TenantNotFoundError } from '../tenant.errors.js';
import type { TenantTier } from '../tenant-tier.js';
import type { MoveTierOptions, TierMoveProgress, TierMoveResult } from './tier-move-options.js';
import type { PooledTier } from './pooled-tier.js';
import { TenantMoveError } from './tier-move.errors.js';
import { delay, retryingLocks } from './tier-move-locks.js';
import { appliedCount, sameMigrations } from './tier-move-migrations.js';
import {
  advanceSequences,
  copyRows,
  ensureMoveTables,
  gateKey,
  installCapture,
  movePlan,
  moveTables,
  readMove,
  removeCapture,
  replayLog,
  type MoveContext,
  type MoveRecord,
  type MoveTable,
  type TierMoveStep,
} from './tier-move-sql.js';

const PAUSE_ATTEMPTS = 5;
/** Catch-up rounds stop once a round applies fewer changes than this. */
const CATCH_UP_SMALL = 200;
const CATCH_UP_ROUNDS = 50;

/** The mover of tenants between tiers (built with the pooled tier). */
export class TierMover {
  readonly #connection: pg.ClientConfig;

  constructor(
    private readonly registry: TenantRegistry,
    private readonly runner: MigrationRunner,
    connection: pg.ClientConfig,
    private readonly files: () => Promise<readonly MigrationFile[]>,
    private readonly pooled: PooledTier,
    private readonly registrySchema: string,
    /** The registry's `maxStalenessMs`. */
    private readonly staleMs: number,
    private readonly tracker?: SessionTracker,
  ) {
    // The snapshot copy of a large tenant runs long; the pause bounds its own waits.
    this.#connection = withoutTimeouts(connection);
  }

  /** See `TenantService.moveTier()`. */
  async move(id: string, to: TenantTier, options: MoveTierOptions = {}): Promise<TierMoveResult> {
    const schema = this.registry.schemaFor(id);
    const row = await this.registry.store.one(id);
    if (!row) throw new TenantNotFoundError(id);
    const from = row.tier;
    const phases = { prepare: 0, copy: 0, catchUp: 0, pause: 0, grace: 0, cleanup: 0 };
    const result = { tenantId: id, from, to, moved: false, copiedRows: 0, replayedChanges: 0 };
    const refuse = (reason: string) => new TenantMoveError(id, to, 'nothing', reason);
    const ctx = this.#context(id, schema, from, to);
    const progress = (step: TierMoveProgress['step'], rows?: number) =>
      options.onProgress?.({ tenantId: id, from, to, step, rows });
    const session = await this.#session();
    const { client } = session;
    let step: TierMoveStep | undefined;
    try {
      if (!(await this.#own(client, schema))) {
        throw refuse('another move or repair of it is running.');
      }
      if (await readMove(client, this.registrySchema, id)) {
        throw refuse('an interrupted move of it is recorded: run repair first.');
      }
      if (from === to) return { ...result, pauseMs: 0, phases };
      if (row.status !== 'active' && row.status !== 'suspended') {
        throw refuse(`it is ${row.status}; only active and suspended tenants move.`);
      }
      await this.pooled.ready();
      let clock = performance.now();
      const lap = () => {
        const now = performance.now();
        const ms = now - clock;
        clock = now;
        return ms;
      };
      const tables = await this.#prepare(client, ctx, refuse);
      step = 'prepared';
      await progress('prepared');
      await retryingLocks(client, async () => {
        await installCapture(client, ctx, tables);
        await this.#setStep(client, id, 'capturing');
      });
      step = 'capturing';
      await progress('capturing');
      phases.prepare = lap();
      // A snapshot taken after the capture committed: every change is in it or in the log.
      result.copiedRows = await inTransaction(
        client,
        async () => {
          await this.#scope(client, id);
          const copied = await copyRows(client, ctx, tables);
          await advanceSequences(client, ctx, tables);
          await progress('copying', copied);
          await this.#setStep(client, id, 'copied');
          return copied;
        },
        'BEGIN ISOLATION LEVEL REPEATABLE READ',
      );
      step = 'copied';
      await progress('copied', result.copiedRows);
      phases.copy = lap();
      result.replayedChanges += await this.#catchUp(client, ctx, tables, progress);
      phases.catchUp = lap();
      const pause = await this.#flip(client, ctx, tables, options, progress);
      step = 'flipped';
      result.replayedChanges += pause.replayed;
      phases.pause = pause.ms;
      phases.catchUp += lap() - pause.ms;
      await this.registry.refresh(id).catch(() => undefined);
      await progress('flipped');
      await delay(Math.max(options.graceMs ?? 0, this.staleMs));
      phases.grace = lap();
      await this.#removeOld(client, ctx);
      phases.cleanup = lap();
      await progress('cleaned');
      return { ...result, moved: true, pauseMs: pause.ms, phases };
    } catch (err) {
      if (err instanceof TenantMoveError) throw err;
      const remains = step === undefined ? 'nothing' : step === 'flipped' ? 'target' : 'source';
      throw new TenantMoveError(id, to, remains, (err as Error).message, { cause: err });
    } finally {
      await session.close();
    }
  }

  /**
   * Finishes a move that flipped (after the grace period still due: the old copy and the
   * capture are removed) or undoes one that did not (the capture and the new copy are removed).
   * `null` when no move of the tenant is recorded.
   */
  async repair(id: string): Promise<'finished-move' | 'undid-move' | null> {
    const schema = this.registry.schemaFor(id);
    const session = await this.#session();
    const { client } = session;
    try {
      if (!(await readMove(client, this.registrySchema, id))) return null;
      if (!(await this.#own(client, schema))) {
        const record = await readMove(client, this.registrySchema, id);
        throw new TenantMoveError(
          id,
          record?.target ?? 'schema',
          'source',
          'another process is moving or repairing it now; wait for it.',
        );
      }
      const record = await readMove(client, this.registrySchema, id);
      if (!record) return null;
      const ctx = this.#context(id, schema, record.source, record.target);
      if (record.step === 'flipped') {
        await delay(this.#graceLeft(record));
        await this.#removeOld(client, ctx);
        return 'finished-move';
      }
      await this.#removeCapture(client, ctx);
      await retryingLocks(client, async () => {
        await lockTenant(client, schema);
        if (ctx.target.tier === 'pooled') await this.pooled.removeRows(client, id);
        else await client.query(`DROP SCHEMA IF EXISTS ${quoteIdentifier(schema)} CASCADE`);
        await this.#forget(client, id);
      });
      return 'undid-move';
    } finally {
      await session.close();
      await this.registry.refresh(id).catch(() => undefined);
    }
  }

  #context(id: string, schema: string, from: TenantTier, to: TenantTier): MoveContext {
    const side = (tier: TenantTier) => ({
      tier,
      schema: tier === 'pooled' ? this.pooled.options.schema : schema,
    });
    return {
      id,
      tenantSchema: schema,
      registrySchema: this.registrySchema,
      column: this.pooled.options.column,
      source: side(from),
      target: side(to),
    };
  }

  /** Records the move and builds the new home (a schema from the migration files), in one transaction. */
  async #prepare(
    client: pg.ClientBase,
    ctx: MoveContext,
    refuse: (reason: string) => TenantMoveError,
  ): Promise<MoveTable[]> {
    const files = await this.files();
    await inTransaction(client, () => ensureMoveTables(client, this.registrySchema));
    return inTransaction(client, async () => {
      await lockTenant(client, ctx.tenantSchema);
      const row = await this.registry.store.one(ctx.id, client, true);
      if (row?.tier !== ctx.source.tier || !['active', 'suspended'].includes(row.status)) {
        throw refuse('it changed meanwhile (dropped, or moved by another process).');
      }
      const pooledApplied = await appliedCount(client, this.pooled.options.schema, files);
      if (ctx.target.tier === 'schema') {
        if (files.some((f) => !f.transactional)) {
          throw refuse(
            'a tenant migration file is marked no-transaction, and a move builds the new schema in one transaction.',
          );
        }
        if (pooledApplied !== files.length) {
          throw refuse('the pooled schema is behind the migration files: run migrateAll() first.');
        }
        await client.query(`CREATE SCHEMA ${quoteIdentifier(ctx.tenantSchema)}`);
        await this.runner.applyInTransaction(client, ctx.tenantSchema, files);
      } else if ((await appliedCount(client, ctx.tenantSchema, files)) !== pooledApplied) {
        throw refuse(
          'its schema and the pooled schema have applied different migration files: run migrateAll() first.',
        );
      }
      const { tables, unkeyed } = await movePlan(client, ctx);
      if (unkeyed.length > 0) {
        throw refuse(
          `table(s) ${unkeyed.join(', ')} have no primary key (or none in the other tier), so changes cannot be applied by key.`,
        );
      }
      await client.query(
        `INSERT INTO ${moveTables(this.registrySchema).moves} (tenant_id, source, target, step) VALUES ($1, $2, $3, 'prepared')`,
        [ctx.id, ctx.source.tier, ctx.target.tier],
      );
      return tables;
    });
  }

  /** Applies logged changes in rounds until a round is small. */
  async #catchUp(
    client: pg.ClientBase,
    ctx: MoveContext,
    tables: readonly MoveTable[],
    progress: (step: 'caught-up', rows: number) => unknown,
  ): Promise<number> {
    let total = 0;
    for (let round = 0; round < CATCH_UP_ROUNDS; round++) {
      const applied = await inTransaction(
        client,
        async () => {
          await this.#scope(client, ctx.id);
          return replayLog(client, ctx, tables);
        },
        'BEGIN ISOLATION LEVEL REPEATABLE READ',
      );
      total += applied;
      await progress('caught-up', applied);
      if (applied < CATCH_UP_SMALL) break;
    }
    return total;
  }

  /**
   * The write pause: under the tenant's lock, the gate every captured write takes shared is taken
   * exclusively (in-flight writes finish, new ones wait), the last changes are applied, sequences
   * advanced, and the registry row flipped with the record, in one transaction. The held writes
   * then find the move flipped and are refused with `PTM01` (re-run on the new home).
   */
  async #flip(
    client: pg.ClientBase,
    ctx: MoveContext,
    tables: readonly MoveTable[],
    options: MoveTierOptions,
    progress: (step: 'pausing' | 'caught-up', rows?: number) => unknown,
  ): Promise<{ ms: number; replayed: number }> {
    const timeout = options.pauseTimeoutMs ?? 1_000;
    const files = await this.files();
    for (let attempt = 1; ; attempt++) {
      let started = 0;
      try {
        const replayed = await inTransaction(client, async () => {
          await client.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(timeout))}`);
          await lockTenant(client, ctx.tenantSchema);
          started = performance.now();
          await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [
            ADVISORY_LOCK_NAMESPACE,
            gateKey(ctx),
          ]);
          await this.#scope(client, ctx.id);
          const row = await this.registry.store.one(ctx.id, client, true);
          if (row?.tier !== ctx.source.tier || !['active', 'suspended'].includes(row.status)) {
            throw new Error('the tenant changed meanwhile (dropped, or moved by another process)');
          }
          const applied = await replayLog(client, ctx, tables);
          await advanceSequences(client, ctx, tables);
          const version = await sameMigrations(client, ctx, files);
          await client.query(
            `UPDATE ${this.registry.table} SET tier = $2, migrated_version = $3, migrations_digest = $4 WHERE id = $1`,
            [ctx.id, ctx.target.tier, version, migrationsDigest(files, version)],
          );
          await this.#setStep(client, ctx.id, 'flipped', true);
          await progress('pausing');
          return applied;
        });
        return { ms: performance.now() - started, replayed };
      } catch (err) {
        if ((err as { code?: string }).code !== '55P03' || attempt >= PAUSE_ATTEMPTS) throw err;
        await this.#catchUp(client, ctx, tables, progress);
      }
    }
  }

  /** Removes the old copy, the capture, the log and the record: the tenant has one home again. */
  async #removeOld(client: pg.ClientBase, ctx: MoveContext): Promise<void> {
    await this.#removeCapture(client, ctx);
    await retryingLocks(client, async () => {
      await lockTenant(client, ctx.tenantSchema);
      if (ctx.source.tier === 'pooled') await this.pooled.removeRows(client, ctx.id);
      else await client.query(`DROP SCHEMA IF EXISTS ${quoteIdentifier(ctx.tenantSchema)} CASCADE`);
      await this.#forget(client, ctx.id);
    });
  }

  /**
   * The capture's triggers go in a transaction of their own: dropping a trigger locks its table
   * exclusively, and on the pooled tables that stops every tenant, so never while rows are deleted.
   */
  async #removeCapture(client: pg.ClientBase, ctx: MoveContext): Promise<void> {
    await retryingLocks(client, async () => {
      await lockTenant(client, ctx.tenantSchema);
      await removeCapture(client, ctx);
    });
  }

  async #forget(client: pg.ClientBase, id: string): Promise<void> {
    const { moves, log } = moveTables(this.registrySchema);
    await client.query(`DELETE FROM ${log} WHERE tenant_id = $1`, [id]);
    await client.query(`DELETE FROM ${moves} WHERE tenant_id = $1`, [id]);
  }

  async #setStep(client: pg.ClientBase, id: string, step: TierMoveStep, flipped = false) {
    await client.query(
      `UPDATE ${moveTables(this.registrySchema).moves} SET step = $2${flipped ? ', flipped_at = now()' : ''} WHERE tenant_id = $1`,
      [id, step],
    );
  }

  /** The tenant set for the open transaction, so forced row-level security admits the mover. */
  async #scope(client: pg.ClientBase, id: string): Promise<void> {
    await client.query("SELECT set_config('tenancy.tenant_id', $1, true)", [id]);
  }

  /** The move's session lock: one mover or repairer per tenant; a crash releases it. */
  async #own(client: pg.ClientBase, schema: string): Promise<boolean> {
    const { rows } = await client.query<{ ok: boolean }>(
      'SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok',
      [ADVISORY_LOCK_NAMESPACE, `mover:${schema}`],
    );
    return rows[0].ok;
  }

  #graceLeft(record: MoveRecord): number {
    const since = record.flipped_at ? Date.now() - record.flipped_at.getTime() : 0;
    return Math.max(0, this.staleMs - since);
  }

  #session() {
    return openSession(this.#connection, {
      tracker: this.tracker,
      applicationName: 'nestjs-pg-tenancy:move',
    });
  }
}
