// Moving a tenant between tiers while it serves: both directions under a read/write loop, with
// every acknowledged write kept once, the untouched rows unchanged, and a second instance
// routing the tenant to its new home within maxStalenessMs.
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { TenantService } from '../../../../lib/index.js';
import { useTenancyApps } from '../../../support/tenancy-apps.js';
import { fingerprint, loadLoop, seed, type LoadReport } from './tier-move-support.js';
import { dropRoleAfterAll } from '../../../support/roles.js';

const ROLE = `pooled_${randomUUID().slice(0, 8)}`;
const MIGRATIONS = join(process.cwd(), 'sample-app/migrations/tenant');
const STALE_MS = 200;
const UNTOUCHED = "name NOT LIKE 'load-%' AND name NOT LIKE 'upd-%'";

/** Rewrites one project of `id` with its own values until stopped: writes that change nothing. */
function touchLoop(tenants: TenantService, id: string) {
  const state = { ops: 0, failures: [] as Error[], running: true };
  const done = (async () => {
    while (state.running) {
      try {
        const db = await tenants.db(id);
        await db.execute(
          'UPDATE {{tables.projects}} SET name = name WHERE id = (SELECT min(id) FROM {{tables.projects}})',
        );
        state.ops++;
      } catch (err) {
        state.failures.push(err as Error);
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
  })();
  return Object.assign(state, {
    stop: async () => {
      state.running = false;
      await done;
    },
  });
}

describe('moving a tenant between tiers', () => {
  const apps = useTenancyApps('tenancy');
  dropRoleAfterAll(ROLE);

  const boot = () =>
    apps.boot({ migrations: MIGRATIONS, pooled: { role: ROLE }, maxStalenessMs: STALE_MS });

  /** Rows of the tenant in the home `tier` says, untouched by the loop. */
  const home = (tier: 'schema' | 'pooled', id: string, where = 'true') =>
    tier === 'pooled'
      ? fingerprint(apps.admin, 'tenancy_pooled', id, where)
      : fingerprint(apps.admin, `tenant_${id}`, null, where);

  async function expectWrites(tenants: TenantService, id: string, report: LoadReport) {
    const db = await tenants.db(id);
    const rows = await db.fetchAll<{ id: string; name: string }>(
      "SELECT id::text, name FROM {{tables.projects}} WHERE name LIKE 'load-%' OR name LIKE 'upd-%'",
    );
    const byId = new Map<string, string[]>();
    for (const r of rows) byId.set(r.id, [...(byId.get(r.id) ?? []), r.name]);
    const deleted = new Set(report.deleted);
    for (const pid of report.inserted) {
      if (deleted.has(pid)) {
        expect([pid, byId.get(pid)]).toEqual([pid, undefined]);
        continue;
      }
      expect([pid, byId.get(pid)?.length]).toEqual([pid, 1]);
      const names = report.updated.get(pid);
      if (names && !byId.get(pid)![0].startsWith('load-')) {
        expect(names.has(byId.get(pid)![0])).toBe(true);
      }
    }
    // Nothing the loop did not acknowledge: every loop row is one it inserted.
    const acknowledged = new Set(report.inserted);
    expect(rows.filter((r) => !acknowledged.has(r.id))).toEqual([]);
  }

  it('moves a pooled tenant to its own schema and back under load, losing and doubling nothing', async () => {
    const tenants = await boot();
    const other = await boot();
    await tenants.create('mover', { tier: 'pooled' });
    await tenants.create('neighbour', { tier: 'pooled' });
    await seed(tenants, 'mover', 300, 8);
    await seed(tenants, 'neighbour', 20, 2);
    const before = await home('pooled', 'mover');
    const neighbour = await home('pooled', 'neighbour');
    await other.get('mover');

    const load = loadLoop(tenants, 'mover');
    const otherLoad = loadLoop(other, 'mover', 1);
    // A neighbour in the pooled tables is untouched by the move's capture and pause. (Updates
    // only: its inserts would draw ids from the shared sequence that the mover's own schema may
    // hand out too, harmless once pooled keys are per tenant, not with today's stand-in keys.)
    const neighbourLoad = touchLoop(tenants, 'neighbour');
    let seen: string | undefined;
    try {
      const toSchema = await tenants.moveTier('mover', 'schema', {
        graceMs: STALE_MS,
        // The grace period is maxStalenessMs: by its end the other instance routes to the schema.
        onProgress: async ({ step }) => {
          if (step === 'cleaned') seen = (await other.db('mover')).schema ?? undefined;
        },
      });
      expect(toSchema).toMatchObject({ moved: true, from: 'pooled', to: 'schema' });
      expect(toSchema.copiedRows).toBeGreaterThanOrEqual(2700);
      expect(toSchema.pauseMs).toBeLessThan(1_000);
      expect(seen).toBe('tenant_mover');
      const back = await tenants.moveTier('mover', 'pooled', { graceMs: STALE_MS });
      expect(back).toMatchObject({ moved: true, from: 'schema', to: 'pooled' });
    } finally {
      await load.stop();
      await otherLoad.stop();
      await neighbourLoad.stop();
    }
    expect(neighbourLoad.failures).toEqual([]);
    expect(neighbourLoad.ops).toBeGreaterThan(0);
    const { report } = load;
    const otherReport = otherLoad.report;
    expect([...report.failures, ...otherReport.failures]).toEqual([]);
    expect(report.ops).toBeGreaterThan(0);

    // One home: rows in the pooled tables, no schema, no capture left.
    expect(await apps.schemaOid('tenant_mover')).toBeUndefined();
    expect((await tenants.get('mover'))?.tier).toBe('pooled');
    const triggers = await apps.admin.query(
      "SELECT tgname FROM pg_trigger WHERE tgname LIKE 'tenancy_move_%'",
    );
    expect(triggers.rows).toEqual([]);
    expect(await home('pooled', 'mover', UNTOUCHED)).toEqual(before);
    expect(await home('pooled', 'neighbour', UNTOUCHED)).toEqual(neighbour);
    await expectWrites(tenants, 'mover', {
      ops: report.ops + otherReport.ops,
      failures: [],
      inserted: [...report.inserted, ...otherReport.inserted],
      deleted: [...report.deleted, ...otherReport.deleted],
      updated: new Map([...report.updated, ...otherReport.updated]),
    });
    // The shared sequence is past every copied id: a new row gets a fresh one.
    const db = await tenants.db('mover');
    await db.execute("INSERT INTO {{tables.projects}} (name) VALUES ('after')");
  });

  it('moves a schema tenant into the pooled tables with its ids, past which new rows are numbered', async () => {
    const tenants = await boot();
    await tenants.create('big');
    await seed(tenants, 'big', 200, 5);
    const before = await home('schema', 'big');
    const result = await tenants.moveTier('big', 'pooled', { graceMs: STALE_MS });
    expect(result).toMatchObject({ moved: true, copiedRows: 1200 });
    expect(await apps.schemaOid('tenant_big')).toBeUndefined();
    expect(await home('pooled', 'big')).toEqual(before);
    const db = await tenants.db('big');
    const id = await db.fetchValue<string>(
      "INSERT INTO {{tables.projects}} (name) VALUES ('new') RETURNING id",
    );
    expect(Number(id)).toBeGreaterThan(200);
    // Already there: nothing to do.
    expect(await tenants.moveTier('big', 'pooled')).toMatchObject({ moved: false });
  });
});
