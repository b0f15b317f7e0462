// A deploy that migrates during a move: the flip checks that both homes have applied the same
// migration files. Otherwise the new home would lack the new file's columns (their values lost
// on the way) or the registry would record a version the new schema has not applied.
import { randomUUID } from 'node:crypto';
import type { TenantService } from '../../../../lib/index.js';
import { TenantMoveError, type TierMoveProgress } from '../../../../lib/tenancy/index.js';
import { useTenancyApps } from '../../../support/tenancy-apps.js';
import { write } from '../../../support/migrations.js';
import { dropRoleAfterAll } from '../../../support/roles.js';

const ROLE = `pooled_${randomUUID().slice(0, 8)}`;
const STALE_MS = 100;

describe('a migration that runs during a move between tiers', () => {
  const apps = useTenancyApps('tenancy');
  dropRoleAfterAll(ROLE);

  it('pooled → schema: the flip is refused, repair undoes it, and the next move carries the new column', async () => {
    const migrations = await apps.folder({
      '001_notes.sql': 'CREATE TABLE {{tables.notes}} (id serial PRIMARY KEY, body text NOT NULL);',
    });
    const tenants: TenantService = await apps.boot({
      migrations,
      pooled: { role: ROLE },
      maxStalenessMs: STALE_MS,
    });
    await tenants.create('m', { tier: 'pooled' });
    const db = await tenants.db('m');
    await db.execute("INSERT INTO {{tables.notes}} (body) VALUES ('kept')");

    let deployed = false;
    const move = tenants.moveTier('m', 'schema', {
      graceMs: STALE_MS,
      onProgress: async ({ step }: TierMoveProgress) => {
        // A deploy between catch-up and flip: a new file, the pooled schema migrated, a value
        // written into the new column.
        if (step === 'caught-up' && !deployed) {
          deployed = true;
          await write(migrations, {
            '002_tag.sql': "ALTER TABLE {{tables.notes}} ADD COLUMN tag text NOT NULL DEFAULT '';",
          });
          await tenants.migrateAll();
          await db.execute("UPDATE {{tables.notes}} SET tag = 'new' WHERE body = 'kept'");
        }
      },
    });
    await expect(move).rejects.toBeInstanceOf(TenantMoveError);
    await expect(move).rejects.toMatchObject({
      remains: 'source',
      message: expect.stringContaining('a migration ran during the move'),
    });
    expect(await tenants.repair('m')).toMatchObject({ action: 'undid-move' });
    expect((await tenants.get('m'))?.tier).toBe('pooled');

    const moved = await tenants.moveTier('m', 'schema', { graceMs: STALE_MS });
    expect(moved.moved).toBe(true);
    expect(
      await (await tenants.db('m')).fetchAll('SELECT body, tag FROM {{tables.notes}}'),
    ).toEqual([{ body: 'kept', tag: 'new' }]);
    expect(await tenants.get('m')).toMatchObject({ tier: 'schema', migratedVersion: 2 });
  });
});
