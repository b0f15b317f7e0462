// A move between tiers cut at each step (its backend terminated, as a crash would), then
// repair(): the tenant ends in exactly one home, every row once, no capture left behind. Used by
// tier-move-repair.spec.ts (pooled → schema) and tier-move-repair-back.spec.ts (schema → pooled).
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { TenantMoveError, type TierMoveProgress } from '../../../../lib/tenancy/index.js';
import type { TenantService } from '../../../../lib/index.js';
import { useTenancyApps } from '../../../support/tenancy-apps.js';
import { fingerprint, loadLoop, seed } from './tier-move-support.js';
import { dropRoleAfterAll } from '../../../support/roles.js';

const ROLE = `pooled_${randomUUID().slice(0, 8)}`;
const MIGRATIONS = join(process.cwd(), 'sample-app/migrations/tenant');
const STALE_MS = 100;
const UNTOUCHED = "name NOT LIKE 'load-%' AND name NOT LIKE 'upd-%'";

type Step = TierMoveProgress['step'];

/**
 * The specs of a move from `from` to `to` cut at each step and repaired (one file per direction,
 * to keep each file short).
 */
export function describeCuts(from: 'schema' | 'pooled', to: 'schema' | 'pooled'): void {
  describe(`repairing a move ${from} → ${to} cut at each step`, () => {
    const apps = useTenancyApps('tenancy');
    dropRoleAfterAll(ROLE);

    const boot = () =>
      apps.boot({ migrations: MIGRATIONS, pooled: { role: ROLE }, maxStalenessMs: STALE_MS });

    const home = (tier: 'schema' | 'pooled', id: string, where = 'true') =>
      tier === 'pooled'
        ? fingerprint(apps.admin, 'tenancy_pooled', id, where)
        : fingerprint(apps.admin, `tenant_${id}`, null, where);

    /** Ends the mover's connection, as its process dying would. */
    const crash = async () => {
      const { rows } = await apps.admin.query<{ ended: boolean }>(
        `SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity
        WHERE application_name = 'nestjs-pg-tenancy:move' AND datname = current_database()`,
      );
      expect(rows).toEqual([{ ended: true }]);
    };

    async function cutAndRepair(
      tenants: TenantService,
      id: string,
      from: 'schema' | 'pooled',
      to: 'schema' | 'pooled',
      at: Step,
    ) {
      await seed(tenants, id, 40, 4);
      const before = await home(from, id, UNTOUCHED);
      const load = loadLoop(tenants, id, 2);
      let move: Promise<unknown>;
      try {
        move = tenants.moveTier(id, to, {
          graceMs: STALE_MS,
          onProgress: async ({ step }) => {
            if (step === at) await crash();
          },
        });
        const err = (await move.catch((e: unknown) => e)) as TenantMoveError;
        expect(err).toBeInstanceOf(TenantMoveError);
        const flipped = at === 'flipped';
        expect(err.remains).toBe(flipped ? 'target' : 'source');
        expect((await tenants.get(id))?.tier).toBe(flipped ? to : from);
        // Moving again is refused until the interrupted move is repaired.
        await expect(tenants.moveTier(id, to)).rejects.toThrow(/run repair first/);
        const repaired = await tenants.repair(id);
        expect(repaired.action).toBe(flipped ? 'finished-move' : 'undid-move');
        expect(repaired.after).toBe('active');
        expect(await tenants.repair(id)).toMatchObject({ action: 'none' });
      } finally {
        await load.stop();
      }
      expect(load.report.failures).toEqual([]);
      const tier = at === 'flipped' ? to : from;
      expect((await tenants.get(id))?.tier).toBe(tier);
      // One home: the schema exists only for the schema tier, pooled rows only for the pooled one.
      expect((await apps.schemaOid(`tenant_${id}`)) !== undefined).toBe(tier === 'schema');
      const pooledRows = await apps.admin.query<{ n: number }>(
        `SELECT (SELECT count(*) FROM tenancy_pooled.projects WHERE tenant_id = $1)::int
            + (SELECT count(*) FROM tenancy_pooled.tasks WHERE tenant_id = $1)::int AS n`,
        [id],
      );
      expect(pooledRows.rows[0].n > 0).toBe(tier === 'pooled');
      expect(await home(tier, id, UNTOUCHED)).toEqual(before);
      const left = await apps.admin.query(
        `SELECT (SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'tenancy_move_%')::int AS triggers,
              (SELECT count(*) FROM tenancy.tenant_moves)::int AS moves,
              (SELECT count(*) FROM tenancy.tenant_move_log)::int AS log`,
      );
      expect(left.rows[0]).toEqual({ triggers: 0, moves: 0, log: 0 });
      // Every write the loop had acknowledged is there once; a new row gets a fresh id.
      const db = await tenants.db(id);
      const deleted = new Set(load.report.deleted);
      const kept = load.report.inserted.filter((p) => !deleted.has(p));
      const found = await db.fetchValue<number>(
        'SELECT count(*)::int FROM {{tables.projects}} WHERE id = ANY($1::bigint[])',
        [kept],
      );
      expect(found).toBe(kept.length);
      const loopRows = await db.fetchValue<number>(
        "SELECT count(*)::int FROM {{tables.projects}} WHERE name LIKE 'load-%' OR name LIKE 'upd-%'",
      );
      expect(loopRows).toBe(kept.length);
      await db.execute("INSERT INTO {{tables.projects}} (name) VALUES ('after')");
    }

    const steps: Step[] = ['prepared', 'capturing', 'copied', 'caught-up', 'pausing', 'flipped'];
    it.each(steps)('cut at %s', async (at) => {
      const tenants = await boot();
      await tenants.create('cut', { tier: from });
      await cutAndRepair(tenants, 'cut', from, to, at);
    });

    it('refuses a repair while the move runs, and leaves the move alone', async () => {
      const tenants = await boot();
      await tenants.create('busy', { tier: from });
      await seed(tenants, 'busy', 5, 1);
      let refused: unknown;
      const result = await tenants.moveTier('busy', to, {
        graceMs: STALE_MS,
        onProgress: async ({ step }) => {
          if (step === 'copied') refused = await tenants.repair('busy').catch((e: unknown) => e);
        },
      });
      expect(refused).toBeInstanceOf(TenantMoveError);
      expect(result.moved).toBe(true);
      expect((await tenants.get('busy'))?.tier).toBe(to);
    });
  });
}
