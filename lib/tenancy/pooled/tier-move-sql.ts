// The statements of a move between tiers: its record, the change capture on the old home, the
// snapshot copy, the replay of captured changes by primary key, and the new home's sequences.
// Source and target are in one database, so each of them is one statement per table.
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { qualifiedName, quoteIdentifier } from '../../shared/identifiers.js';
import { tablesInInsertOrder } from '../../catalog/schema-tables.js';
import { MIGRATIONS_TABLE } from '../../migrations/migration-history.js';
import { ADVISORY_LOCK_NAMESPACE } from '../../migrations/migration-lock.js';
import type { TenantTier } from '../tenant-tier.js';
import { TENANT_MOVED_SQLSTATE } from '../../core/query/moved-retry.js';

/** The steps recorded in `tenant_moves.step`, in order. */
export type TierMoveStep = 'prepared' | 'capturing' | 'copied' | 'flipped';

/** One side of a move: a schema, and whether it is the pooled one (rows of every tenant). */
export interface MoveSide {
  readonly tier: TenantTier;
  readonly schema: string;
}

/** What every statement of one move needs. */
export interface MoveContext {
  readonly id: string;
  /** The tenant's own schema name (its lock's key; the schema a move to `schema` creates). */
  readonly tenantSchema: string;
  readonly registrySchema: string;
  /** The pooled tables' tenant column. */
  readonly column: string;
  readonly source: MoveSide;
  readonly target: MoveSide;
}

/** A table as a move copies it: its columns without the tenant column, its key, the target's key. */
export interface MoveTable {
  readonly name: string;
  readonly columns: readonly string[];
  /** Source expressions for `columns` (local types cast through text to the target's). */
  readonly values: readonly string[];
  /** The primary key's columns, without the tenant column. */
  readonly key: readonly string[];
  /** The target's primary key constraint (the upsert's conflict target). */
  readonly targetKey: string;
}

/** A row of `tenant_moves`. */
export interface MoveRecord {
  readonly tenant_id: string;
  readonly source: TenantTier;
  readonly target: TenantTier;
  readonly step: TierMoveStep;
  readonly flipped_at: Date | null;
}

const literal = (value: string): string => `'${value.replace(/'/g, "''")}'`;

/** The move tables of `registrySchema`, qualified. */
export function moveTables(registrySchema: string): { moves: string; log: string } {
  return {
    moves: qualifiedName(registrySchema, 'tenant_moves'),
    log: qualifiedName(registrySchema, 'tenant_move_log'),
  };
}

/** Creates the record of moves and the change log, once (under an advisory lock). */
export async function ensureMoveTables(
  client: pg.ClientBase,
  registrySchema: string,
): Promise<void> {
  const { moves, log } = moveTables(registrySchema);
  await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [
    ADVISORY_LOCK_NAMESPACE,
    `${registrySchema}.tenant_moves`,
  ]);
  await client.query(`CREATE TABLE IF NOT EXISTS ${moves} (
      tenant_id text PRIMARY KEY,
      source text NOT NULL,
      target text NOT NULL,
      step text NOT NULL,
      started_at timestamptz NOT NULL DEFAULT now(),
      flipped_at timestamptz
    );
    CREATE TABLE IF NOT EXISTS ${log} (
      seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      tenant_id text NOT NULL,
      tbl text NOT NULL,
      key jsonb NOT NULL
    );
    CREATE INDEX IF NOT EXISTS tenant_move_log_tenant ON ${log} (tenant_id, seq)`);
}

/** The move's record, or `undefined` (also when the table does not exist yet). */
export async function readMove(
  db: pg.ClientBase | pg.Pool,
  registrySchema: string,
  id: string,
): Promise<MoveRecord | undefined> {
  const { moves } = moveTables(registrySchema);
  const { rows } = await db.query<{ found: string | null }>(
    'SELECT to_regclass($1)::text AS found',
    [moves],
  );
  if (rows[0]?.found == null) return undefined;
  const found = await db.query<MoveRecord>(
    `SELECT tenant_id, source, target, step, flipped_at FROM ${moves} WHERE tenant_id = $1`,
    [id],
  );
  return found.rows[0];
}

/** The key of the lock every captured write takes shared, and the flip exclusively. */
export function gateKey(ctx: Pick<MoveContext, 'tenantSchema'>): string {
  return `move:${ctx.tenantSchema}`;
}

/** The name of the move's capture function and triggers (short: ids may be long). */
function captureName(id: string): string {
  return `tenancy_move_${createHash('sha256').update(id).digest('hex').slice(0, 16)}`;
}

/**
 * The tables a move copies, parents first, with their keys and the target's key constraint.
 * The migration history is each schema's own. A table without a primary key cannot be replayed
 * by key: its name is returned in `unkeyed`.
 */
export async function movePlan(
  client: pg.ClientBase,
  ctx: MoveContext,
): Promise<{ tables: MoveTable[]; unkeyed: string[] }> {
  const sourceTables = await tablesInInsertOrder(client, ctx.source.schema);
  const targetTables = new Map(
    (await tablesInInsertOrder(client, ctx.target.schema)).map((t) => [t.name, t]),
  );
  const tables: MoveTable[] = [];
  const unkeyed: string[] = [];
  for (const table of sourceTables) {
    if (table.name === MIGRATIONS_TABLE) continue;
    const target = targetTables.get(table.name);
    const key = await primaryKey(client, ctx.source.schema, table.name);
    const targetKey = target && (await primaryKey(client, ctx.target.schema, table.name));
    if (!target || !key || !targetKey) {
      unkeyed.push(table.name);
      continue;
    }
    const columns: string[] = [];
    const values: string[] = [];
    table.columns.forEach((column, i) => {
      if (column === ctx.column && ctx.source.tier === 'pooled') return;
      const j = target.columns.indexOf(column);
      const cast = j >= 0 ? target.localTypes[j] : null;
      columns.push(column);
      values.push(
        table.localTypes[i] || cast
          ? `s.${quoteIdentifier(column)}::text::${cast ?? 'text'}`
          : `s.${quoteIdentifier(column)}`,
      );
    });
    tables.push({
      name: table.name,
      columns,
      values,
      key: key.columns.filter((c) => c !== ctx.column),
      targetKey: targetKey.name,
    });
  }
  return { tables, unkeyed };
}

async function primaryKey(
  client: pg.ClientBase,
  schema: string,
  table: string,
): Promise<{ name: string; columns: string[] } | undefined> {
  const { rows } = await client.query<{ name: string; columns: string[] }>(
    `SELECT k.conname AS name,
            array(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(n, i)
                    JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i) AS columns
       FROM pg_constraint k WHERE k.contype = 'p' AND k.conrelid = $1::regclass`,
    [qualifiedName(schema, table)],
  );
  return rows[0];
}

/** `AND <alias>.tenant_id = $1` on a pooled side, nothing on a schema. */
function scoped(ctx: MoveContext, side: MoveSide, alias: string): string {
  return side.tier === 'pooled' ? ` AND ${alias}.${quoteIdentifier(ctx.column)} = $1` : '';
}

/**
 * Installs the capture on the source: a function in the registry schema and, per table, row
 * triggers (held to the tenant by `WHEN` on the pooled tables) that take the move's gate lock
 * shared, refuse the write once the move is flipped (SQLSTATE `PTM01`; in `REPEATABLE READ` the
 * locked record raises 40001 instead), and log the changed keys. On a schema source, a
 * `TRUNCATE` (which no row trigger sees) is refused for the whole move (SQLSTATE `55000`).
 */
export async function installCapture(
  client: pg.ClientBase,
  ctx: MoveContext,
  tables: readonly MoveTable[],
): Promise<void> {
  const { moves, log } = moveTables(ctx.registrySchema);
  const name = captureName(ctx.id);
  const fn = qualifiedName(ctx.registrySchema, name);
  const id = literal(ctx.id);
  await client.query(`CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    DECLARE
      step text;
    BEGIN
      IF TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'TRUNCATE of tenant %''s % is refused while the tenant moves between tiers: its rows are being copied, and a TRUNCATE is not captured', ${id}, TG_TABLE_NAME
          USING ERRCODE = '55000', HINT = 'Delete the rows instead, or truncate once the move has ended.';
      END IF;
      PERFORM pg_advisory_xact_lock_shared(${ADVISORY_LOCK_NAMESPACE}, hashtext(${literal(gateKey(ctx))}));
      SELECT m.step INTO step FROM ${moves} m WHERE m.tenant_id = ${id} FOR SHARE;
      IF step = 'flipped' THEN
        RAISE EXCEPTION 'tenant % moved to another tier: run the statement again on its new home', ${id}
          USING ERRCODE = '${TENANT_MOVED_SQLSTATE}';
      END IF;
      IF TG_OP <> 'DELETE' THEN
        INSERT INTO ${log} (tenant_id, tbl, key)
          SELECT ${id}, TG_TABLE_NAME, jsonb_object_agg(k, to_jsonb(NEW) -> k) FROM unnest(TG_ARGV) k;
      END IF;
      IF TG_OP <> 'INSERT' THEN
        INSERT INTO ${log} (tenant_id, tbl, key)
          SELECT ${id}, TG_TABLE_NAME, jsonb_object_agg(k, to_jsonb(OLD) -> k) FROM unnest(TG_ARGV) k;
      END IF;
      RETURN NULL;
    END $fn$`);
  const pooled = ctx.source.tier === 'pooled';
  const col = quoteIdentifier(ctx.column);
  for (const table of tables) {
    const t = qualifiedName(ctx.source.schema, table.name);
    const args = table.key.map(literal).join(', ');
    const when = (row: string) => (pooled ? ` WHEN (${row}.${col} = ${id})` : '');
    for (const [suffix, event, condition] of [
      ['i', 'INSERT', when('NEW')],
      ['u', 'UPDATE', pooled ? ` WHEN (NEW.${col} = ${id} OR OLD.${col} = ${id})` : ''],
      ['d', 'DELETE', when('OLD')],
    ] as const) {
      await client.query(
        `CREATE TRIGGER ${quoteIdentifier(`${name}_${suffix}`)} AFTER ${event} ON ${t}
           FOR EACH ROW${condition} EXECUTE FUNCTION ${fn}(${args})`,
      );
    }
    // A tenant's own schema can be truncated by its app (the pooled role may not truncate the
    // shared tables), and a TRUNCATE fires no row trigger: it is refused until the move ends.
    if (!pooled) {
      await client.query(
        `CREATE TRIGGER ${quoteIdentifier(`${name}_t`)} BEFORE TRUNCATE ON ${t}
           FOR EACH STATEMENT EXECUTE FUNCTION ${fn}(${args})`,
      );
    }
  }
}

/** Removes the capture's triggers from the source's tables (those that still exist) and its function. */
export async function removeCapture(client: pg.ClientBase, ctx: MoveContext): Promise<void> {
  const name = captureName(ctx.id);
  const { rows } = await client.query<{ tbl: string; trigger: string }>(
    `SELECT c.relname AS tbl, t.tgname AS trigger
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
      WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1) AND t.tgname LIKE $2`,
    [ctx.source.schema, `${name}\\_%`],
  );
  for (const r of rows) {
    await client.query(
      `DROP TRIGGER IF EXISTS ${quoteIdentifier(r.trigger)} ON ${qualifiedName(ctx.source.schema, r.tbl)}`,
    );
  }
  await client.query(`DROP FUNCTION IF EXISTS ${qualifiedName(ctx.registrySchema, name)}()`);
}

/** Copies every row of the tenant from the source to the (empty) target; returns the count. */
export async function copyRows(
  client: pg.ClientBase,
  ctx: MoveContext,
  tables: readonly MoveTable[],
): Promise<number> {
  let copied = 0;
  for (const table of tables) {
    const { rowCount } = await client.query(
      `${insertInto(ctx, table)}
       SELECT ${selectValues(ctx, table)} FROM ${qualifiedName(ctx.source.schema, table.name)} s
        WHERE true${scoped(ctx, ctx.source, 's')}`,
      [ctx.id],
    );
    copied += rowCount ?? 0;
  }
  return copied;
}

function insertInto(ctx: MoveContext, table: MoveTable): string {
  const columns = [...table.columns, ...(ctx.target.tier === 'pooled' ? [ctx.column] : [])];
  return `INSERT INTO ${qualifiedName(ctx.target.schema, table.name)} (${columns.map((c) => quoteIdentifier(c)).join(', ')}) OVERRIDING SYSTEM VALUE`;
}

function selectValues(ctx: MoveContext, table: MoveTable): string {
  return [...table.values, ...(ctx.target.tier === 'pooled' ? ['$1::text'] : [])].join(', ');
}

/**
 * Applies the captured changes visible now to the target, by key: each key logged gets the
 * source's current row (upserted, parents first) or none (deleted, children first), so an entry
 * the snapshot already held changes nothing. The entries applied are deleted with it. Returns
 * how many there were. Run in the caller's transaction (a snapshot for the log and the source).
 */
export async function replayLog(
  client: pg.ClientBase,
  ctx: MoveContext,
  tables: readonly MoveTable[],
): Promise<number> {
  const { log } = moveTables(ctx.registrySchema);
  await client.query(
    'CREATE TEMP TABLE IF NOT EXISTS tenancy_move_keys (seq bigint, tbl text, key jsonb) ON COMMIT DELETE ROWS',
  );
  const { rowCount } = await client.query(
    `INSERT INTO tenancy_move_keys SELECT seq, tbl, key FROM ${log} WHERE tenant_id = $1`,
    [ctx.id],
  );
  if (!rowCount) return 0;
  const keyed = (table: MoveTable) => {
    const record = `jsonb_populate_record(NULL::${qualifiedName(ctx.source.schema, table.name)}, key)`;
    return `SELECT DISTINCT ${table.key.map((c) => `(${record}).${quoteIdentifier(c)}`).join(', ')}
              FROM tenancy_move_keys WHERE tbl = ${literal(table.name)}`;
  };
  const match = (table: MoveTable, a: string, b: string) =>
    table.key.map((c) => `${a}.${quoteIdentifier(c)} = ${b}.${quoteIdentifier(c)}`).join(' AND ');
  const keyList = (table: MoveTable, alias: string) =>
    `(${table.key.map((c) => `${alias}.${quoteIdentifier(c)}`).join(', ')})`;
  for (const table of [...tables].reverse()) {
    const source = qualifiedName(ctx.source.schema, table.name);
    await client.query(
      `DELETE FROM ${qualifiedName(ctx.target.schema, table.name)} d
        USING (${keyed(table)}) k (${table.key.map((c) => quoteIdentifier(c)).join(', ')})
        WHERE ${match(table, 'd', 'k')}${scoped(ctx, ctx.target, 'd')}
          AND NOT EXISTS (SELECT 1 FROM ${source} s WHERE ${match(table, 's', 'k')}${scoped(ctx, ctx.source, 's')})`,
      [ctx.id],
    );
  }
  for (const table of tables) {
    const updates = table.columns
      .filter((c) => !table.key.includes(c))
      .map((c) => `${quoteIdentifier(c)} = EXCLUDED.${quoteIdentifier(c)}`);
    await client.query(
      `${insertInto(ctx, table)}
       SELECT ${selectValues(ctx, table)} FROM ${qualifiedName(ctx.source.schema, table.name)} s
        WHERE ${keyList(table, 's')} IN (${keyed(table)})${scoped(ctx, ctx.source, 's')}
       ON CONFLICT ON CONSTRAINT ${quoteIdentifier(table.targetKey)}
       ${updates.length > 0 ? `DO UPDATE SET ${updates.join(', ')}` : 'DO NOTHING'}`,
      [ctx.id],
    );
  }
  await client.query(`DELETE FROM ${log} WHERE seq IN (SELECT seq FROM tenancy_move_keys)`);
  await client.query('DELETE FROM tenancy_move_keys');
  return rowCount;
}

/**
 * Moves every sequence that feeds a column of the target's tables (identity, serial) past the
 * largest value the tenant's rows hold there, so the new home never hands out a copied id again.
 * On the pooled side the sequence is shared: it only ever moves forward.
 */
export async function advanceSequences(
  client: pg.ClientBase,
  ctx: MoveContext,
  tables: readonly MoveTable[],
): Promise<void> {
  for (const table of tables) {
    const t = qualifiedName(ctx.target.schema, table.name);
    const { rows } = await client.query<{ col: string; seq: string }>(
      `SELECT a.attname AS col, pg_get_serial_sequence($1, a.attname) AS seq
         FROM pg_attribute a
        WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
          AND pg_get_serial_sequence($1, a.attname) IS NOT NULL`,
      [t],
    );
    for (const { col, seq } of rows) {
      await client.query(
        `SELECT setval($2::regclass, m) FROM (SELECT max(d.${quoteIdentifier(col)})::bigint AS m
           FROM ${t} d WHERE $1::text IS NOT NULL${scoped(ctx, ctx.target, 'd')}) x
          WHERE m > COALESCE(pg_sequence_last_value($2::regclass), 0)`,
        [ctx.id, seq],
      );
    }
  }
}
