import { SchemaDb } from '../../core/schema-db.js';
import type { QueryEnvironment } from '../../core/query/query-environment.js';
import { resolvePooledTier, type ResolvedPooledTier } from '../tenant-tier.js';
import { TenantNotFoundError, TenantSuspendedError } from '../tenant.errors.js';
import type { ViewRow } from './registry-snapshot.js';
import { toTenantInfo, type TenantInfo } from './tenant-info.js';
import { isServable, type TenantStatus } from '../tenant-state.js';

/** A known tenant and its manager. */
export interface TenantEntry {
  /** The tenant's registry row. */
  readonly info: TenantInfo;
  /**
   * A manager bound to the tenant's home (its schema, or its scope in the pooled tables). Built
   * on first use, then the same object for as long as the tenant's home stays the same.
   */
  readonly db: SchemaDb;
}

/** What builds the manager of a tenant's home. */
type BuildDb = (info: TenantInfo) => SchemaDb;

/** One home's manager, shared by the successive entries (versions) of a tenant in that home. */
interface Home {
  db: SchemaDb | undefined;
  /** The tenant left this home: moved (`refuse` undefined) or dropped. See `SchemaDb.retire()`. */
  left?: { refuse?: () => Error };
}

/**
 * An entry whose manager is built when first asked for: a registry of 100,000 tenants, most of
 * which no request on this instance ever names, then holds no manager for them.
 */
class CachedEntry implements TenantEntry {
  readonly info: TenantInfo;
  /** Made when first needed (a manager built, or a next version): most entries never need one. */
  #home: Home | undefined;
  readonly #build: BuildDb;

  constructor(info: TenantInfo, home: Home | undefined, build: BuildDb) {
    this.info = info;
    this.#home = home;
    this.#build = build;
  }

  get db(): SchemaDb {
    const home = (this.#home ??= { db: undefined });
    if (home.db) return home.db;
    home.db = this.#build(this.info);
    // Built from an entry kept past the move or drop of its tenant: retired from the start.
    if (home.left) home.db.retire(home.left.refuse);
    return home.db;
  }

  /**
   * The tenant left this home: its manager, built or not, is retired (see `SchemaDb.retire()`),
   * so code that kept it reaches the new home after a move, and nothing after a drop.
   */
  retire(refuse?: () => Error): void {
    const home = (this.#home ??= { db: undefined });
    home.left ??= { refuse };
    home.db?.retire(refuse);
  }

  /** The same tenant in the same home, as `info` says now. */
  withInfo(info: TenantInfo): CachedEntry {
    return new CachedEntry(info, (this.#home ??= { db: undefined }), this.#build);
  }

  /**
   * The next version of this tenant: the same home (and manager) unless `info` moved it, and
   * then the old home is retired. (A tenant being dropped keeps its manager: the drop lets work
   * in flight finish, then cancels it. Its manager is retired once the row is gone.)
   */
  next(info: TenantInfo): CachedEntry {
    const same = this.info.schema === info.schema && this.info.tier === info.tier;
    if (same) return this.withInfo(info);
    this.retire();
    return new CachedEntry(info, undefined, this.#build);
  }
}

/** What the work of a dropped tenant's retired manager gets. */
function dropped(id: string): () => Error {
  return () => new TenantNotFoundError(id);
}

/** What the cache knows about one id. */
export interface TenantSlot {
  /** Highest version applied; a deletion keeps a version too (a tombstone). */
  version: number;
  /** `undefined` for a tombstone (no row). */
  entry: TenantEntry | undefined;
  /** When (performance.now()) the state applied was current: the start of the read, or arrival. */
  checkedAt: number;
  /** The last snapshot merge whose rows listed the id (0: none). */
  merged: number;
}

const NEGATIVE_CACHE_MAX = 10_000;

/**
 * The manager of `row`'s home: its schema, or its scope in the pooled tier's tables (with the
 * tier's default names when the tier is off here, so a pooled tenant is never served unscoped).
 */
export function homeManager(
  env: QueryEnvironment,
  info: Pick<TenantInfo, 'id' | 'schema' | 'tier'>,
  pooled: ResolvedPooledTier | undefined,
): SchemaDb {
  if (info.tier !== 'pooled') return SchemaDb.create(env, info.schema);
  const { schema, role, column } = pooled ?? resolvePooledTier(true)!;
  return SchemaDb.pooled(env, schema, { role, tenantId: info.id }, column);
}

/**
 * `count:sum` of versions, exact however large the sum: added as numbers (a BigInt per row costs
 * a heartbeat over 100,000 tenants tens of milliseconds), carried into a BigInt before a partial
 * sum could leave the integers a double holds exactly.
 */
class VersionSum {
  #count = 0;
  #part = 0;
  #carried = 0n;

  add(version: number): void {
    this.#count++;
    if (this.#part + version > Number.MAX_SAFE_INTEGER) {
      this.#carried += BigInt(this.#part);
      this.#part = 0;
    }
    this.#part += version;
  }

  toString(): string {
    return `${this.#count}:${this.#carried + BigInt(this.#part)}`;
  }
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
  readonly #createDb: BuildDb;
  #merges = 0;

  /**
   * `createDb`: the manager of a tenant's home (its schema, or its scope in the pooled tables),
   * called when an entry's `db` is first read.
   */
  constructor(createDb: BuildDb) {
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
  applyRow(row: ViewRow, readAt: number): TenantEntry | undefined {
    return this.#apply(row, readAt).entry;
  }

  /** `applyRow()`, returning the id's slot afterwards. */
  #apply(row: ViewRow, readAt: number): TenantSlot {
    // Both are empty while a fleet loads: no hashing of 100,000 ids for nothing.
    if (this.#negative.size > 0) this.#negative.delete(row.id);
    if (this.#announced.size > 0) {
      const announced = this.#announced.get(row.id);
      if (announced && announced.version <= row.version) this.#announced.delete(row.id);
    }
    const slot = this.#slots.get(row.id);
    if (slot) {
      // A tombstone needs a strictly newer row: a read that started before the deletion was
      // applied can still return the deleted row at the same version.
      const newer = slot.entry ? row.version >= slot.version : row.version > slot.version;
      if (!newer) {
        if (row.version === slot.version) slot.checkedAt = Math.max(slot.checkedAt, readAt);
        return slot;
      }
    }
    const next: TenantSlot = {
      version: row.version,
      entry: this.#toEntry(row, slot?.entry),
      checkedAt: Math.max(readAt, slot?.checkedAt ?? 0),
      merged: slot?.merged ?? 0,
    };
    this.#slots.set(row.id, next);
    return next;
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
    bury(id, slot.entry);
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
      bury(id, slot?.entry);
      this.#announced.delete(id);
      this.#slots.set(id, { version, entry: undefined, checkedAt: at, merged: slot?.merged ?? 0 });
      return false;
    }
    const announced = this.#announced.get(id);
    if (!announced || announced.version < version) this.#announced.set(id, { version, at });
    if (slot?.entry && status && !isServable(status)) {
      // Refusing sooner is always safe; serving sooner waits for the full row.
      slot.entry = (slot.entry as CachedEntry).withInfo(
        Object.freeze({ ...slot.entry.info, status, version }),
      );
      slot.version = version;
      slot.checkedAt = at;
    }
    return true;
  }

  /**
   * Merges a full snapshot read by a query that started at `readAt`: newer rows are applied, and
   * ids the snapshot lacks are tombstoned unless something newer than the snapshot was applied.
   */
  merge(rows: readonly ViewRow[], readAt: number): void {
    const merging = this.beginMerge(readAt);
    merging.add(rows);
    merging.end();
  }

  /**
   * `merge()` a page at a time: `add()` each page of the snapshot as it arrives, then `end()`
   * (not called when the read failed: the rows applied stand, nothing is tombstoned).
   */
  beginMerge(readAt: number): { add(rows: readonly ViewRow[]): void; end(): void } {
    // Merges run one at a time (the registry shares one reload); each marks the slots it lists.
    const stamp = ++this.#merges;
    return {
      add: (rows) => {
        for (const row of rows) this.#apply(row, readAt).merged = stamp;
      },
      end: () => this.#removeUnseen((_, slot) => slot?.merged === stamp, readAt),
    };
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
    this.#removeUnseen((id) => seen.has(id), readAt);
    return changed;
  }

  /**
   * `count:sum` of the versions of the rows the view holds, a version announced but not re-read
   * yet counting as held. A heartbeat reads the same of the table: when nothing was lost, the two
   * agree (barring a change that commits while the heartbeat is sent).
   */
  digest(): string {
    const sum = new VersionSum();
    // Every few hundred milliseconds over every tenant: forEach, not `for…of` over entries, which
    // allocates an [id, slot] pair per tenant (megabytes per second of garbage at 100,000).
    this.#slots.forEach((slot, id) => {
      const announced = this.#announced.size > 0 ? (this.#announced.get(id)?.version ?? 0) : 0;
      if (announced > slot.version || slot.entry) sum.add(Math.max(announced, slot.version));
    });
    for (const [id, { version }] of this.#announced) {
      if (!this.#slots.has(id)) sum.add(version);
    }
    return sum.toString();
  }

  /** Tombstones what a snapshot started at `readAt` lacks, unless applied after it began. */
  #removeUnseen(seen: (id: string, slot?: TenantSlot) => boolean, readAt: number): void {
    this.#slots.forEach((slot, id) => {
      if (seen(id, slot) || slot.checkedAt > readAt) return;
      if (slot.entry) {
        bury(id, slot.entry);
        slot.entry = undefined;
      }
      slot.checkedAt = readAt;
    });
    for (const id of this.#announced.keys()) {
      if (!seen(id, this.#slots.get(id))) this.#forgetAnnounced(id, readAt);
    }
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

  #toEntry(row: ViewRow, previous: TenantEntry | undefined): TenantEntry {
    const info = toTenantInfo(row);
    // Kept while the home is the same: a move between tiers gets a new manager.
    if (previous) return (previous as CachedEntry).next(info);
    return new CachedEntry(info, undefined, this.#createDb);
  }
}

/** The tenant's row is gone: the manager of its home is retired as dropped. */
function bury(id: string, entry: TenantEntry | undefined): void {
  (entry as CachedEntry | undefined)?.retire(dropped(id));
}
