// The registry read the in-memory view is built from: every row at start-up (100,000 of them in a
// large fleet) and on each reload, so it is read the lean way, a page at a time.
import type pg from 'pg';
import { watch } from '../../connection/watched-client.js';
import { TENANT_STATUSES, type TenantStatus } from '../tenant-state.js';
import { TENANT_TIERS, type TenantTier } from '../tenant-tier.js';

/** A registry row as the in-memory view keeps it (all but the fleet migrator's digest). */
export interface ViewRow {
  id: string;
  schema_name: string;
  status: TenantStatus;
  /** Where its rows live; `schema` on a registry from before the pooled tier. */
  tier: TenantTier;
  metadata: Record<string, unknown>;
  created_at: Date;
  migrated_version: number;
  last_migrated_at: Date | null;
  last_error: string | null;
  /** From the registry's sequence; `0` on a registry not upgraded yet (read-only CLI). */
  version: number;
}

// Only what the view keeps (not the fleet migrator's digest), rows as arrays, and the two
// timestamps as epoch milliseconds: pg's text-to-Date parser was the largest single cost of
// loading 100,000 rows. `new Date(ms)` keeps whole milliseconds, as pg's parser does.
const COLUMNS = `id, schema_name, status, tier, NULLIF(metadata, '{}'),
  (extract(epoch FROM created_at) * 1000)::float8, migrated_version,
  (extract(epoch FROM last_migrated_at) * 1000)::float8, last_error, version::float8`;

/** Rows per page: what the client holds at once, beyond the view itself. */
export const SNAPSHOT_PAGE_ROWS = 5000;

/** A column the view reads is missing: a registry from an older release, not upgraded yet. */
const UNDEFINED_COLUMN = '42703';

/**
 * Every row of the registry, handed to `onPage` a page at a time (ordered by id), all from one
 * snapshot of the table (a read-only repeatable-read transaction on one connection). On a registry
 * an older release made and nothing upgraded yet (the read-only CLI reads it as it is), what
 * `readAll` reads (every column), in one page.
 */
export async function readSnapshot(
  pool: pg.Pool,
  table: string,
  onPage: (rows: ViewRow[]) => void,
  readAll: () => Promise<ViewRow[]>,
): Promise<void> {
  const client = await pool.connect();
  // Checked out across several statements: a backend ended between two of them must not crash
  // the process (pg-pool then discards the connection, which no longer answers).
  watch(client);
  let failure: Error | undefined;
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    try {
      await client.query(
        `DECLARE pgt_registry_snapshot NO SCROLL CURSOR FOR SELECT ${COLUMNS} FROM ${table} ORDER BY id`,
      );
    } catch (err) {
      await client.query('ROLLBACK');
      if ((err as { code?: unknown }).code !== UNDEFINED_COLUMN) throw err;
      onPage(await readAll());
      return;
    }
    const fetch = {
      text: `FETCH ${SNAPSHOT_PAGE_ROWS} FROM pgt_registry_snapshot`,
      rowMode: 'array',
    };
    for (;;) {
      const { rows } = await client.query<unknown[]>(fetch);
      if (rows.length > 0) onPage(toViewRows(rows));
      if (rows.length < SNAPSHOT_PAGE_ROWS) break;
    }
    await client.query('COMMIT');
  } catch (err) {
    failure = err as Error;
    throw err;
  } finally {
    // A connection that failed mid-transaction is not given back to serve others.
    client.release(failure);
  }
}

/** The rows of `ids` (one query), as {@link readSnapshot} reads them. */
export async function readRows(
  pool: pg.Pool,
  table: string,
  ids: readonly string[],
  readAll: (ids: readonly string[]) => Promise<ViewRow[]>,
): Promise<ViewRow[]> {
  try {
    const { rows } = await pool.query<unknown[]>({
      text: `SELECT ${COLUMNS} FROM ${table} WHERE id = ANY($1) ORDER BY id`,
      values: [ids],
      rowMode: 'array',
    });
    return toViewRows(rows);
  } catch (err) {
    if ((err as { code?: unknown }).code === UNDEFINED_COLUMN) return readAll(ids);
    throw err;
  }
}

// The same few strings for every row: pg makes a new string per value.
const STATUS = new Map<unknown, TenantStatus>(TENANT_STATUSES.map((s) => [s, s]));
const TIER = new Map<unknown, TenantTier>(TENANT_TIERS.map((t) => [t, t]));

/** The metadata of every tenant created without any: one frozen object, not one per row. */
const NO_METADATA: Record<string, unknown> = Object.freeze({});

function toViewRows(rows: unknown[][]): ViewRow[] {
  const out = new Array<ViewRow>(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    out[i] = {
      id: r[0] as string,
      schema_name: r[1] as string,
      status: STATUS.get(r[2]) ?? (r[2] as TenantStatus),
      tier: TIER.get(r[3]) ?? (r[3] as TenantTier),
      metadata: (r[4] as Record<string, unknown> | null) ?? NO_METADATA,
      created_at: new Date(r[5] as number),
      migrated_version: r[6] as number,
      last_migrated_at: r[7] === null ? null : new Date(r[7] as number),
      last_error: r[8] as string | null,
      version: r[9] as number,
    };
  }
  return out;
}
