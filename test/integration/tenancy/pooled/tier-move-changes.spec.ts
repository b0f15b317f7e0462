// The changes a move must carry, made at fixed points of it (its progress callback), so that each
// is deterministic: after the snapshot, between catch-up and pause, and held by the pause itself.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { TenantMovedError, type SchemaDb, type TenantService } from '../../../../lib/index.js';
import type { TierMoveProgress } from '../../../../lib/tenancy/index.js';
import { useTenancyApps } from '../../../support/tenancy-apps.js';
import { fingerprint, seed } from './tier-move-support.js';
import { dropRoleAfterAll } from '../../../support/roles.js';

const ROLE = `pooled_${randomUUID().slice(0, 8)}`;
const MIGRATIONS = join(process.cwd(), 'sample-app/migrations/tenant');
const STALE_MS = 100;

describe('the changes a move between tiers carries', () => {
  const apps = useTenancyApps('tenancy');
  dropRoleAfterAll(ROLE);

  const boot = () =>
    apps.boot({ migrations: MIGRATIONS, pooled: { role: ROLE }, maxStalenessMs: STALE_MS });

  const home = (tier: 'schema' | 'pooled', id: string) =>
    tier === 'pooled'
      ? fingerprint(apps.admin, 'tenancy_pooled', id)
      : fingerprint(apps.admin, `tenant_${id}`, null);

  /** Insert, update and delete (with its tasks, by cascade) through the tenant's old manager. */
  const change = async (db: SchemaDb, n: number) => {
    await db.execute('INSERT INTO {{tables.projects}} (name) VALUES ($1)', [`late-${n}`]);
    await db.execute("UPDATE {{tables.projects}} SET name = name || '*' WHERE id = $1", [n]);
    await db.execute('DELETE FROM {{tables.projects}} WHERE id = $1', [n + 1]);
    await db.execute('UPDATE {{tables.tasks}} SET done = NOT done WHERE project_id = $1', [n + 2]);
  };

  /** Waits (polling the server, not the clock) until `n` statements of the tenant wait for a lock. */
  const blockedWriters = async (n: number) => {
    for (;;) {
      const { rows } = await apps.admin.query(
        `SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT%held%'`,
      );
      if (rows.length >= n) return;
      await new Promise((resolve) => setImmediate(resolve));
    }
  };

  async function moveWithChanges(
    tenants: TenantService,
    from: 'schema' | 'pooled',
    to: 'schema' | 'pooled',
  ) {
    await seed(tenants, 'carried', 30, 3);
    const old = await tenants.db('carried');
    let held: Promise<unknown> | undefined;
    let heldTx: Promise<unknown> | undefined;
    let lost: Promise<unknown> | undefined;
    let atFlip: unknown;
    let caughtUp = 0;
    const result = await tenants.moveTier('carried', to, {
      graceMs: STALE_MS,
      onProgress: async ({ step }: TierMoveProgress) => {
        // After the snapshot was taken, before it commits: only the capture has these.
        if (step === 'copying') await change(old, 1);
        // After the last catch-up round: only the final catch-up in the pause has these.
        if (step === 'caught-up' && caughtUp++ === 0) await change(old, 5);
        // Held by the pause, refused by the old home after the flip, re-run on the new one.
        if (step === 'pausing') {
          held = old.execute("INSERT INTO {{tables.projects}} (name) VALUES ('held')");
          // A transaction with retries runs again on the new home; one without fails, typed.
          heldTx = old.transaction(
            (tx) => tx.execute("INSERT INTO {{tables.projects}} (name) VALUES ('held-tx')"),
            { retries: 1 },
          );
          lost = old
            .transaction((tx) =>
              tx.execute("INSERT INTO {{tables.projects}} (name) VALUES ('held-lost')"),
            )
            .catch((err: unknown) => err);
          await blockedWriters(3);
        }
        // The old copy is still there until the grace period ends: both homes agree.
        if (step === 'flipped') atFlip = await home(from, 'carried');
      },
    });
    expect(result.moved).toBe(true);
    expect(result.replayedChanges).toBeGreaterThan(0);
    await held;
    await heldTx;
    expect(await lost).toBeInstanceOf(TenantMovedError);
    const now = await tenants.db('carried');
    expect(
      await now.fetchAll(
        "SELECT name FROM {{tables.projects}} WHERE name LIKE 'held%' OR name LIKE 'late-%' ORDER BY name",
      ),
    ).toEqual([{ name: 'held' }, { name: 'held-tx' }, { name: 'late-1' }, { name: 'late-5' }]);
    // The held writes reached only the new home (refused by the old one after the flip).
    await now.execute("DELETE FROM {{tables.projects}} WHERE name IN ('held', 'held-tx')");
    expect({ ...(atFlip as object) }).toEqual(await home(to, 'carried'));
    expect(
      await now.fetchValue('SELECT count(*)::int FROM {{tables.projects}} WHERE id IN (2, 6)'),
    ).toBe(0);
    expect(
      await now.fetchValue("SELECT count(*)::int FROM {{tables.projects}} WHERE name LIKE '%*'"),
    ).toBe(2);
    // New rows are numbered past every copied id.
    await now.execute("INSERT INTO {{tables.projects}} (name) VALUES ('fresh')");
  }

  it('pooled → schema: changes after the snapshot, after the last round and during the pause', async () => {
    const tenants = await boot();
    await tenants.create('carried', { tier: 'pooled' });
    await moveWithChanges(tenants, 'pooled', 'schema');
  });

  it('schema → pooled: the same', async () => {
    const tenants = await boot();
    await tenants.create('carried');
    await moveWithChanges(tenants, 'schema', 'pooled');
  });

  it.each([
    ['pooled', 'schema'],
    ['schema', 'pooled'],
  ] as const)(
    '%s → %s: a manager kept from before the move serves the new home once the old copy is gone',
    async (from, to) => {
      const tenants = await boot();
      await tenants.create('kept', from === 'pooled' ? { tier: 'pooled' } : {});
      await seed(tenants, 'kept', 3, 1);
      // A long job holds its manager across the move, past the grace period and the clean-up.
      const kept = await tenants.db('kept');
      expect((await tenants.moveTier('kept', to, { graceMs: STALE_MS })).moved).toBe(true);
      await kept.execute("INSERT INTO {{tables.projects}} (name) VALUES ('late')");
      await kept.insertMany('projects', [{ name: 'late-many' }]);
      await kept.copyFrom('projects', ['name'], [['late-copy']]);
      await kept.transaction((tx) =>
        tx.execute("INSERT INTO {{tables.projects}} (name) VALUES ('late-tx')"),
      );
      const streamed: string[] = [];
      for await (const row of kept.stream<{ name: string }>(
        "SELECT name FROM {{tables.projects}} WHERE name LIKE 'late%' ORDER BY name",
      )) {
        streamed.push(row.name);
      }
      const late = ['late', 'late-copy', 'late-many', 'late-tx'];
      expect(streamed).toEqual(late);
      // Every row is in the new home, and nothing was left where no home serves it.
      const now = await tenants.db('kept');
      expect(
        await now.fetchAll(
          "SELECT name FROM {{tables.projects}} WHERE name LIKE 'late%' ORDER BY name",
        ),
      ).toEqual(late.map((name) => ({ name })));
      const { rows } = await apps.admin.query(
        "SELECT 1 FROM tenancy_pooled.projects WHERE tenant_id = 'kept'",
      );
      expect(rows.length).toBe(to === 'pooled' ? 7 : 0);
    },
  );

  it('schema → pooled: a TRUNCATE of the old home, which no row trigger sees, is refused meanwhile', async () => {
    const tenants = await boot();
    await tenants.create('carried');
    await seed(tenants, 'carried', 10, 2);
    const old = await tenants.db('carried');
    const before = await home('schema', 'carried');
    let refused: unknown;
    const result = await tenants.moveTier('carried', 'pooled', {
      graceMs: STALE_MS,
      onProgress: async ({ step }: TierMoveProgress) => {
        // Between catch-up rounds: no snapshot holds the tables, so TRUNCATE gets its lock.
        if (step === 'caught-up' && refused === undefined) {
          refused = await old.execute('TRUNCATE {{tables.tasks}}').catch((err: unknown) => err);
        }
      },
    });
    expect(result.moved).toBe(true);
    expect(refused).toMatchObject({
      code: '55000',
      message: expect.stringContaining("TRUNCATE of tenant carried's tasks is refused"),
    });
    expect(await home('pooled', 'carried')).toEqual(before);
  });
});
