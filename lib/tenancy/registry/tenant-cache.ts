import { SchemaDb } from '../../core/schema-db.js';
import type { QueryEnvironment } from '../../core/query/query-environment.js';
import { resolvePooledTier, type ResolvedPooledTier } from '../tenant-tier.js';
import { TenantNotFoundError, TenantSuspendedError } from '../tenant.errors.js';
import type { TenantRow } from './tenant-registry-store.js';
import { toTenantInfo, type TenantInfo } from './tenant-info.js';
import { isServable, type TenantStatus } from '../tenant-state.js';

/** A known tenant and its pre-built manager. */
export interface TenantEntry {
  /** The tenant's registry row. */
  readonly info: TenantInfo;
  /** A manager bound to the tenant's schema. */
  readonly db: SchemaDb;
}

/** What the cache knows about one id. */
export interface TenantSlot {
  /** Highest version applied; a deletion keeps a version too (a tombstone). */
  version: number;
  /** `undefined` for a tombstone (no row). */
  entry: TenantEntry | undefined;
  /** When (performance.now()) the state applied was current: the start of the read, or arrival. */
  checkedAt: number;
}

const NEGATIVE_CACHE_MAX = 10_000;

/**
 * The manager of `row`'s home: its schema, or its scope in the pooled tier's tables (with the
 * tier's default names when the tier is off here, so a pooled tenant is never served unscoped).
 */
export function homeManager(
  env: QueryEnvironment,
  row: TenantRow,
  pooled: ResolvedPooledTier | undefined,
): SchemaDb {
  if (row.tier !== 'pooled') return SchemaDb.create(env, row.schema_name);
  const { schema, role } = pooled ?? resolvePooledTier(true)!;
  return SchemaDb.pooled(env, schema, { role, tenantId: row.id });
}

/** The answer a request gets for tenant `id` in the state `entry` records. */
export function admitted(id: string, entry: TenantEntry | null): TenantEntry {
  const status = entry?.info.status;
  if (status === 'active') return entry!;
  if (status === 'suspended') throw new TenantSuspendedError(id);
  throw new TenantNotFoundError(id);
}

/**
 * The in-memory view of the registry. It only moves forward: a row is applied only when its
 * version is newer than what is held, a deletion leaves a versioned tombstone, and a snapshot
 * (reload) merges into the map instead of replacing it, so a slow reload cannot undo a change
 * applied while it ran.
 */
export class TenantCache {
  readonly #slots = new Map<string, TenantSlot>();
  readonly #negative = new Map<string, number>();
  /** Versions announced by a notice and not applied yet (the re-read is pending), with arrival. */
  readonly #announced = new Map<string, { version: number; at: number }>();
  readonly #createDb: (row: TenantRow) => SchemaDb;

  /** `createDb`: the manager of a row's home (its schema, or its scope in the pooled tables). */
  constructor(createDb: (row: TenantRow) => SchemaDb) {
    this.#createDb = createDb;
  }

  /** The slot of `id`, tombstones included. */
  slot(id: string): TenantSlot | undefined {
    return this.#slots.get(id);
  }

  /** Every tenant with a row (all states), unordered. */
  entries(): TenantEntry[] {
    const out: TenantEntry[] = [];
    for (const slot of this.#slots.values()) if (slot.entry) out.push(slot.entry);
    return out;
  }

  /** Number of tenants with a row. */
  get size(): number {
    let n = 0;
    for (const slot of this.#slots.values()) if (slot.entry) n++;
    return n;
  }

  /**
   * Applies a row read by a query that started at `readAt`. Older than what is held: ignored.
   * Returns the slot's entry afterwards.
   */
  applyRow(row: TenantRow, readAt: number): TenantEntry | undefined {
    this.#negative.delete(row.id);
    const announced = this.#announced.get(row.id);
    if (announced && announced.version <= row.version) this.#announced.delete(row.id);
    const slot = this.#slots.get(row.id);
    if (slot) {
      // A tombstone needs a strictly newer row: a read that started before the deletion was
      // applied can still return the deleted row at the same version.
      const newer = slot.entry ? row.version >= slot.version : row.version > slot.version;
      if (!newer) {
        if (row.version === slot.version) slot.checkedAt = Math.max(slot.checkedAt, readAt);
        return slot.entry;
      }
    }
    const entry = this.#toEntry(row, slot?.entry);
    this.#slots.set(row.id, {
      version: row.version,
      entry,
      checkedAt: Math.max(readAt, slot?.checkedAt ?? 0),
    });
    return entry;
  }

  /**
   * A point read that started at `readAt` found no row. The state held is older than the read
   * unless it was applied after the read began; only then is it kept.
   */
  applyMissing(id: string, readAt: number): void {
    this.#forgetAnnounced(id, readAt);
    const slot = this.#slots.get(id);
    // Nothing is kept for an id never seen: bogus ids must not grow the map (the negative cache,
    // which is bounded, remembers them).
    if (!slot || slot.checkedAt > readAt) return;
    slot.entry = undefined;
    slot.checkedAt = readAt;
  }

  /**
   * A change announced by the trigger, arriving at `at`. A deletion is applied at once (a
   * tombstone with its version); a change to a state that is not served is applied at once to the
   * status (the rest of the row follows from the re-read the caller schedules). Returns whether
   * the id needs a re-read.
   */
  applyNotice(
    id: string,
    version: number,
    op: 'insert' | 'update' | 'delete',
    status: TenantStatus | undefined,
    at: number,
  ): boolean {
    this.#negative.delete(id);
    const slot = this.#slots.get(id);
    if (slot && version <= slot.version) return false;
    if (op === 'delete') {
      this.#announced.delete(id);
      this.#slots.set(id, { version, entry: undefined, checkedAt: at });
      return false;
    }
    const announced = this.#announced.get(id);
    if (!announced || announced.version < version) this.#announced.set(id, { version, at });
    if (slot?.entry && status && !isServable(status)) {
      // Refusing sooner is always safe; serving sooner waits for the full row.
      slot.entry = {
        info: Object.freeze({ ...slot.entry.info, status, version }),
        db: slot.entry.db,
      };
      slot.version = version;
      slot.checkedAt = at;
    }
    return true;
  }

  /**
   * Merges a full snapshot read by a query that started at `readAt`: newer rows are applied, and
   * ids the snapshot lacks are tombstoned unless something newer than the snapshot was applied.
   */
  merge(rows: readonly TenantRow[], readAt: number): void {
    const seen = new Set<string>();
    for (const row of rows) {
      seen.add(row.id);
      this.applyRow(row, readAt);
    }
    this.#removeUnseen(seen, readAt);
  }

  /**
   * Compares the view with every id and version of the table, as read by a query that started at
   * `readAt`: ids the table lacks are tombstoned (as by `merge`), and the ids whose row is newer
   * than the view's, or unknown to it, are returned for a re-read.
   */
  compare(versions: readonly { id: string; version: number }[], readAt: number): string[] {
    const seen = new Set<string>();
    const changed: string[] = [];
    for (const { id, version } of versions) {
      seen.add(id);
      const slot = this.#slots.get(id);
      if (!slot || slot.version < version) changed.push(id);
      else if (slot.version === version && slot.entry) {
        slot.checkedAt = Math.max(slot.checkedAt, readAt);
      }
    }
    this.#removeUnseen(seen, readAt);
    return changed;
  }

  /**
   * `count:sum` of the versions of the rows the view holds, a version announced but not re-read
   * yet counting as held. A heartbeat reads the same of the table: when nothing was lost, the two
   * agree (barring a change that commits while the heartbeat is sent).
   */
  digest(): string {
    let count = 0;
    let sum = 0n;
    for (const [id, slot] of this.#slots) {
      const announced = this.#announced.get(id)?.version ?? 0;
      if (announced > slot.version || slot.entry) {
        count++;
        sum += BigInt(Math.max(announced, slot.version));
      }
    }
    for (const [id, { version }] of this.#announced) {
      if (this.#slots.has(id)) continue;
      count++;
      sum += BigInt(version);
    }
    return `${count}:${sum}`;
  }

  /** Tombstones what a snapshot started at `readAt` lacks, unless applied after it began. */
  #removeUnseen(seen: ReadonlySet<string>, readAt: number): void {
    for (const [id, slot] of this.#slots) {
      if (seen.has(id) || slot.checkedAt > readAt) continue;
      if (slot.entry) slot.entry = undefined;
      slot.checkedAt = readAt;
    }
    for (const id of this.#announced.keys()) if (!seen.has(id)) this.#forgetAnnounced(id, readAt);
    this.#negative.clear();
  }

  /** Drops what a notice that arrived before `readAt` announced: a read from `readAt` is newer. */
  #forgetAnnounced(id: string, readAt: number): void {
    const announced = this.#announced.get(id);
    if (announced && announced.at < readAt) this.#announced.delete(id);
  }

  /** Whether `id` is remembered as unknown (only consulted while unsynced). */
  isKnownMissing(id: string, now: number): boolean {
    const until = this.#negative.get(id);
    if (until === undefined) return false;
    if (until > now) return true;
    this.#negative.delete(id);
    return false;
  }

  /** Remembers `id` as unknown until `until`. */
  rememberMissing(id: string, until: number): void {
    if (this.#negative.size >= NEGATIVE_CACHE_MAX) {
      this.#negative.delete(this.#negative.keys().next().value as string);
    }
    this.#negative.set(id, until);
  }

  #toEntry(row: TenantRow, previous: TenantEntry | undefined): TenantEntry {
    // Kept while the home is the same: a move between tiers gets a new manager.
    const sameHome = previous?.info.schema === row.schema_name && previous.info.tier === row.tier;
    const db = sameHome ? previous.db : this.#createDb(row);
    return { info: toTenantInfo(row), db };
  }
}
