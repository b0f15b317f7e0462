import { SchemaDb } from '../../../../lib/core/schema-db.js';
import { TenantCache } from '../../../../lib/tenancy/registry/tenant-cache.js';
import type { TenantRow } from '../../../../lib/tenancy/registry/tenant-registry-store.js';
import type { TenantStatus } from '../../../../lib/tenancy/tenant-state.js';
import { TENANT_TRANSITIONS, statesLeadingTo } from '../../../../lib/tenancy/tenant-state.js';
import pg from 'pg';

const pool = new pg.Pool();
afterAll(() => pool.end());

function row(id: string, version: number, status: TenantStatus = 'active'): TenantRow {
  return {
    id,
    schema_name: `tenant_${id}`,
    status,
    tier: 'schema',
    metadata: {},
    created_at: new Date(0),
    migrated_version: 1,
    migrations_digest: null,
    last_migrated_at: null,
    last_error: null,
    version,
  };
}

describe('TenantCache only moves forward', () => {
  const cache = () => new TenantCache((r) => SchemaDb.create(pool, r.schema));
  const status = (c: TenantCache, id: string) => c.slot(id)?.entry?.info.status ?? null;

  it('never applies an older row over a newer one', () => {
    const c = cache();
    c.applyRow(row('a', 5, 'suspended'), 10);
    c.applyRow(row('a', 4, 'active'), 20);
    expect(status(c, 'a')).toBe('suspended');
    c.applyRow(row('a', 6, 'active'), 5);
    expect(status(c, 'a')).toBe('active');
  });

  it('merges a snapshot older than a change applied while it was read', () => {
    const c = cache();
    c.applyRow(row('a', 1), 0);
    c.applyRow(row('b', 1), 0);
    // The reload started at t=10 and saw version 1; a refresh at t=15 saw the suspension (v2).
    c.applyRow(row('a', 2, 'suspended'), 15);
    c.merge([row('a', 1), row('b', 1)], 10);
    expect(status(c, 'a')).toBe('suspended');
    // A tenant created after the snapshot began is not removed by it.
    c.applyRow(row('c', 3), 12);
    c.merge([row('a', 2, 'suspended'), row('b', 1)], 11);
    expect(status(c, 'c')).toBe('active');
    // A snapshot newer than the state held removes what it lacks.
    c.merge([row('a', 2, 'suspended')], 30);
    expect(status(c, 'b')).toBeNull();
    expect(status(c, 'c')).toBeNull();
  });

  it('merges a snapshot page by page, keeping an id a page listed when a newer row replaces it', () => {
    const c = cache();
    c.applyRow(row('gone', 1), 0);
    const merging = c.beginMerge(10);
    merging.add([row('a', 1)]);
    // Between two pages, a point read that started earlier returns a newer row of 'a'.
    c.applyRow(row('a', 2, 'suspended'), 5);
    merging.add([row('b', 1)]);
    merging.end();
    expect(status(c, 'a')).toBe('suspended');
    expect(status(c, 'b')).toBe('active');
    expect(status(c, 'gone')).toBeNull();
  });

  it('keeps deletions as versioned tombstones', () => {
    const c = cache();
    c.applyRow(row('a', 3), 0);
    expect(c.applyNotice('a', 4, 'delete', undefined, 5)).toBe(false);
    expect(status(c, 'a')).toBeNull();
    // A read that began before the deletion cannot bring the row back...
    c.applyRow(row('a', 3), 1);
    expect(status(c, 'a')).toBeNull();
    // ...but a newer row (the id created again) does.
    c.applyRow(row('a', 9), 10);
    expect(status(c, 'a')).toBe('active');
  });

  it('a read that began before a deletion cannot bring the row back at the same version', () => {
    const c = cache();
    c.applyRow(row('a', 3), 0);
    // A reload that started at t=10 no longer saw the row: a tombstone that keeps version 3.
    c.merge([], 10);
    expect(status(c, 'a')).toBeNull();
    // A point read that started at t=5, before the deletion, returns the row at version 3.
    c.applyRow(row('a', 3), 5);
    expect(status(c, 'a')).toBeNull();
    // The same after a point read found nothing.
    c.applyRow(row('b', 7), 0);
    c.applyMissing('b', 10);
    c.applyRow(row('b', 7), 5);
    expect(status(c, 'b')).toBeNull();
    // A live row at the same version is still confirmed by such a read.
    c.applyRow(row('c', 4), 0);
    c.applyRow(row('c', 4), 20);
    expect(c.slot('c')!.checkedAt).toBe(20);
  });

  it('a late, older delete notice does not tombstone a newer row', () => {
    const c = cache();
    // The id was dropped (delete at version 8) and created again (version 9); a read of the new
    // row lands before the delete notice does.
    c.applyRow(row('a', 9), 10);
    expect(c.applyNotice('a', 8, 'delete', undefined, 12)).toBe(false);
    expect(status(c, 'a')).toBe('active');
    expect(c.slot('a')!.version).toBe(9);
    // A newer delete notice does.
    expect(c.applyNotice('a', 10, 'delete', undefined, 13)).toBe(false);
    expect(status(c, 'a')).toBeNull();
  });

  it('compares the table’s ids and versions: newer or unknown rows to re-read, missing ids tombstoned', () => {
    const c = cache();
    c.applyRow(row('same', 2), 0);
    c.applyRow(row('older', 3), 0);
    c.applyRow(row('gone', 4), 0);
    c.applyRow(row('late', 5), 0);
    // A change applied after the comparison's read began is not undone by it.
    c.applyRow(row('fresh', 9), 30);
    const changed = c.compare(
      [
        { id: 'same', version: 2 },
        { id: 'older', version: 6 },
        { id: 'new', version: 7 },
        { id: 'late', version: 1 },
      ],
      20,
    );
    expect(changed.sort()).toEqual(['new', 'older']);
    expect(status(c, 'gone')).toBeNull();
    expect(status(c, 'fresh')).toBe('active');
    expect(status(c, 'late')).toBe('active');
    expect(c.slot('same')!.checkedAt).toBe(20);
  });

  it('digests what it holds as the heartbeat digests the table, announced versions included', () => {
    const c = cache();
    expect(c.digest()).toBe('0:0');
    c.applyRow(row('a', 3), 0);
    c.applyRow(row('b', 5), 0);
    expect(c.digest()).toBe('2:8');
    // Announced and not re-read yet: counted at the announced version.
    expect(c.applyNotice('a', 6, 'update', 'active', 1)).toBe(true);
    expect(c.applyNotice('n', 7, 'insert', 'provisioning', 1)).toBe(true);
    expect(c.digest()).toBe('3:18');
    c.applyRow(row('a', 6), 2);
    c.applyRow(row('n', 7, 'provisioning'), 2);
    expect(c.digest()).toBe('3:18');
    // A deletion leaves the count at once.
    c.applyNotice('b', 8, 'delete', undefined, 3);
    expect(c.digest()).toBe('2:13');
    // An announced insert whose row a later read did not find is forgotten.
    c.applyNotice('x', 9, 'insert', 'provisioning', 4);
    c.applyMissing('x', 5);
    expect(c.digest()).toBe('2:13');
  });

  it('applies refusals from a notice at once, and waits for the row to serve', () => {
    const c = cache();
    c.applyRow(row('a', 1), 0);
    expect(c.applyNotice('a', 2, 'update', 'dropping', 5)).toBe(true);
    expect(status(c, 'a')).toBe('dropping');
    expect(c.applyNotice('a', 3, 'update', 'active', 6)).toBe(true);
    expect(status(c, 'a')).toBe('dropping'); // until the re-read
    expect(c.applyNotice('a', 2, 'update', 'active', 7)).toBe(false); // older: ignored
  });

  it('a point read that found nothing removes only state older than the read', () => {
    const c = cache();
    c.applyRow(row('a', 1), 0);
    c.applyRow(row('a', 2, 'suspended'), 20);
    c.applyMissing('a', 10);
    expect(status(c, 'a')).toBe('suspended');
    c.applyMissing('a', 30);
    expect(status(c, 'a')).toBeNull();
  });
});

describe("TenantCache builds a tenant's manager on first use", () => {
  const built: string[] = [];
  const cache = () =>
    new TenantCache((info) => {
      built.push(`${info.id}:${info.tier}`);
      return info.tier === 'pooled'
        ? SchemaDb.pooled({ pool }, 'tenancy_pooled', { role: 'r', tenantId: info.id }, 'tenant_id')
        : SchemaDb.create(pool, info.schema);
    });
  const entry = (c: TenantCache, id: string) => c.slot(id)!.entry!;
  beforeEach(() => built.splice(0));

  it('builds none at load, one on first use, and keeps it while the home stays the same', () => {
    const c = cache();
    c.merge([row('a', 1), row('b', 1), { ...row('p', 1), tier: 'pooled' }], 0);
    expect(built).toEqual([]);
    const db = entry(c, 'p').db;
    expect(db.pooledTenantId).toBe('p');
    expect(entry(c, 'p').db).toBe(db);
    expect(built).toEqual(['p:pooled']);
    // A newer version in the same home, and a refusal applied from a notice: the same manager.
    c.applyRow({ ...row('p', 2, 'suspended'), tier: 'pooled' }, 1);
    expect(entry(c, 'p').db).toBe(db);
    c.applyNotice('p', 3, 'update', 'dropping', 2);
    expect(entry(c, 'p').info.status).toBe('dropping');
    expect(entry(c, 'p').db).toBe(db);
    expect(built).toEqual(['p:pooled']);
  });

  it('gives a tenant moved to another tier a new manager, built for its new home', () => {
    const c = cache();
    c.applyRow({ ...row('m', 1), tier: 'pooled' }, 0);
    const before = entry(c, 'm');
    const pooledDb = before.db;
    c.applyRow(row('m', 2), 1); // moved to its own schema
    const schemaDb = entry(c, 'm').db;
    expect(schemaDb).not.toBe(pooledDb);
    expect(schemaDb.pooledTenantId).toBeUndefined();
    expect(schemaDb.schema).toBe('tenant_m');
    // Work that still holds the entry it resolved before the move keeps the old home's manager.
    expect(before.db).toBe(pooledDb);
    // And back: a new pooled manager, not the schema one.
    c.applyRow({ ...row('m', 3), tier: 'pooled' }, 2);
    expect(entry(c, 'm').db.pooledTenantId).toBe('m');
    expect(built).toEqual(['m:pooled', 'm:schema', 'm:pooled']);
  });
});

describe('TenantCache digests', () => {
  const cache = () => new TenantCache((r) => SchemaDb.create(pool, r.schema));

  it('digests versions exactly when their sum outgrows a double', () => {
    const c = cache();
    const big = Number.MAX_SAFE_INTEGER - 10;
    c.applyRow(row('a', big), 0);
    c.applyRow(row('b', big - 1), 0);
    c.applyRow(row('c', 8), 0);
    // As doubles, big + (big - 1) + 8 rounds to an even number.
    expect(c.digest()).toBe(`3:${BigInt(big) + BigInt(big - 1) + 8n}`);
  });
});

describe('the lifecycle', () => {
  it('has one way in (provisioning) and one way out (dropping)', () => {
    expect(statesLeadingTo('provisioning')).toEqual([]);
    expect(statesLeadingTo('dropping')).toEqual(['provisioning', 'active', 'suspended']);
    expect(TENANT_TRANSITIONS.dropping).toEqual([]);
    expect(statesLeadingTo('active')).toEqual(['provisioning', 'suspended']);
  });
});
