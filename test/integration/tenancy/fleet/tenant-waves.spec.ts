import pg from 'pg';
import { openTenancy } from '../../../../lib/cli/tenancy-cli.js';
import type { TenantMigrationProgress } from '../../../../lib/tenancy/index.js';
import type { TenantService } from '../../../../lib/index.js';
import { adminPool, useTestDatabase } from '../../../support/database.js';
import { useMigrationFolders, write } from '../../../support/migrations.js';

const IDS = ['a', 'b', 'c', 'd', 'e', 'f'];

describe('tenant migration waves', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;
  const ends: (() => Promise<void>)[] = [];

  beforeAll(() => {
    admin = adminPool(database.current.url);
  });
  afterEach(async () => {
    await Promise.all(ends.splice(0).map((end) => end()));
  });
  afterAll(() => admin.end());

  /**
   * Six tenants created at file 001; then 002 is added, which fails for tenant `c` (its schema
   * already holds the table 002 creates).
   */
  async function fleet(name: string): Promise<{ service: TenantService; prefix: string }> {
    const migrations = await folder({
      '001_projects.sql': 'CREATE TABLE {{tables.projects}} (id serial PRIMARY KEY);',
    });
    const prefix = `${name}_`;
    const tenancy = await openTenancy({
      connection: database.current.url,
      tenancy: { migrations, registrySchema: `reg_${name}`, schemaPrefix: prefix },
    });
    ends.push(() => tenancy.end());
    for (const id of IDS) await tenancy.service.create(id);
    await write(migrations, { '002_extra.sql': 'CREATE TABLE {{tables.extra}} (id int);' });
    await admin.query(`CREATE TABLE "${prefix}c".extra (other text)`);
    return { service: tenancy.service, prefix };
  }

  const hasExtra = async (prefix: string, id: string) =>
    (
      await admin.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM "${prefix}${id}".schema_migrations WHERE version = 2`,
      )
    ).rows[0].n === 1;

  const track = () => {
    const seen: TenantMigrationProgress[] = [];
    return { seen, onProgress: (p: TenantMigrationProgress) => void seen.push(p) };
  };

  it('a failing canary stops the rollout before wave 1', async () => {
    const { service, prefix } = await fleet('wcan');
    const progress = track();
    const summary = await service.migrateAll({
      canary: ['c', 'a'],
      waveSize: 2,
      concurrency: 1,
      onProgress: progress.onProgress,
    });
    expect(summary.stopped).toEqual({ reason: 'canary-failed', wave: 0 });
    expect(summary.failed.map((f) => f.tenantId)).toEqual(['c']);
    expect(progress.seen.map((p) => [p.tenantId, p.wave])).toEqual([
      ['a', 0],
      ['c', 0],
    ]);
    expect([...summary.notAttempted].sort()).toEqual(['b', 'd', 'e', 'f']);
    expect(await hasExtra(prefix, 'a')).toBe(true);
    for (const id of ['b', 'd', 'e', 'f']) expect(await hasExtra(prefix, id)).toBe(false);
    const rollout = await service.migrationRollout();
    expect(rollout).toMatchObject({ state: 'stopped', stopReason: 'canary-failed', files: 2 });
    expect(rollout?.waves).toEqual([{ wave: 0, applied: 1, upToDate: 0, failed: 1, gone: 0 }]);
  });

  it('stops after N failures, resumes on a rerun, and retries only the failed', async () => {
    const { service, prefix } = await fleet('wres');
    await admin.query(`CREATE TABLE "${prefix}e".extra (other text)`);
    const first = track();
    const stopped = await service.migrateAll({
      waveSize: 2,
      stopAfterFailures: 1,
      concurrency: 1,
      onProgress: first.onProgress,
    });
    // Wave 1 (a, b) passes; in wave 2, c fails and d is never started.
    expect(first.seen.map((p) => [p.tenantId, p.wave, p.outcome])).toEqual([
      ['a', 1, 'applied'],
      ['b', 1, 'applied'],
      ['c', 2, 'failed'],
    ]);
    expect(stopped.stopped).toEqual({ reason: 'failure-limit', wave: 2 });
    expect(stopped.notAttempted).toEqual(['d', 'e', 'f']);
    expect(stopped.waves.map((w) => [w.wave, w.notAttempted])).toEqual([
      [1, 0],
      [2, 1],
      [3, 2],
    ]);
    const status = await service.migrationStatus();
    expect(status.map((s) => [s.tenantId, s.wave, s.rolloutOutcome])).toEqual([
      ['a', 1, 'applied'],
      ['b', 1, 'applied'],
      ['c', 2, 'failed'],
      ['d', null, null],
      ['e', null, null],
      ['f', null, null],
    ]);

    // The rerun resumes: done tenants are skipped, the ones never attempted come first, the
    // earlier failure last, and wave numbers carry on.
    const second = track();
    const resumed = await service.migrateAll({
      waveSize: 2,
      concurrency: 1,
      onProgress: second.onProgress,
    });
    expect(second.seen.map((p) => [p.tenantId, p.wave, p.outcome])).toEqual([
      ['d', 3, 'applied'],
      ['e', 3, 'failed'],
      ['f', 4, 'applied'],
      ['c', 4, 'failed'],
    ]);
    expect(resumed.skipped).toBe(2);
    expect(resumed.stopped).toBeNull();
    expect(await service.migrationRollout()).toMatchObject({ state: 'finished', lastWave: 4 });

    // Only the failed tenants, once their cause is fixed.
    await admin.query(`DROP TABLE "${prefix}c".extra, "${prefix}e".extra`);
    const third = track();
    const retried = await service.migrateAll({
      retryFailed: true,
      concurrency: 1,
      onProgress: third.onProgress,
    });
    expect(third.seen.map((p) => [p.tenantId, p.outcome])).toEqual([
      ['c', 'applied'],
      ['e', 'applied'],
    ]);
    expect(retried.failed).toEqual([]);
    for (const id of IDS) expect(await hasExtra(prefix, id)).toBe(true);
    const after = await service.migrationStatus();
    expect(after.every((s) => s.pending === 0 && s.lastError === null)).toBe(true);
    expect(after.map((s) => s.rolloutOutcome)).toEqual(Array(6).fill('applied'));
  });

  it('refuses a wave size or failure limit that is not a positive integer', async () => {
    const { service } = await fleet('wbad');
    await expect(service.migrateAll({ waveSize: 0 })).rejects.toThrow(/waveSize/);
    await expect(service.migrateAll({ stopAfterFailures: 1.5 })).rejects.toThrow(
      /stopAfterFailures/,
    );
  });
});
