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
  const cache = () => new TenantCache((schema) => SchemaDb.create(pool, schema));
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

describe('the lifecycle', () => {
  it('has one way in (provisioning) and one way out (dropping)', () => {
    expect(statesLeadingTo('provisioning')).toEqual([]);
    expect(statesLeadingTo('dropping')).toEqual(['provisioning', 'active', 'suspended']);
    expect(TENANT_TRANSITIONS.dropping).toEqual([]);
    expect(statesLeadingTo('active')).toEqual(['provisioning', 'suspended']);
  });
});
