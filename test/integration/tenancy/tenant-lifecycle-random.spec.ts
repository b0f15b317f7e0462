import { Test, type TestingModule } from '@nestjs/testing';
import pg from 'pg';
import {
  DatabaseModule,
  TenantNotFoundError,
  TenantService,
  TenantSuspendedError,
  type TenantStatus,
} from '../../../lib/index.js';
import { TenantRegistry } from '../../../lib/tenancy/index.js';
import { adminPool, useTestDatabase } from '../../support/database.js';
import { useMigrationFolders, write } from '../../support/migrations.js';
import { startSilentProxy, type SilentProxy } from '../../support/tcp-proxy.js';
import { answerOf, random, type Answer } from '../../support/random-runs.js';

const BOUND_MS = 1_000;
const RUN_MS = Number(process.env.LIFECYCLE_RUN_MS ?? 20_000);
const IDS = Array.from({ length: 8 }, (_, i) => `z${i}`);
const REGISTRY = 'random_reg';

/** Per id: the states it had, each valid from (at the earliest) `from` to (at the latest) `to`. */
type Timeline = Map<string, { answer: Answer; from: number; to: number }[]>;

interface Observation {
  instance: string;
  id: string;
  answer: Answer;
  startedAt: number;
  endedAt: number;
}

describe('randomized lifecycle: two instances, random operations and network faults', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let admin: pg.Pool;
  let proxy: SilentProxy;
  const apps: TestingModule[] = [];

  async function boot(migrations: string, directConnection?: string) {
    const app = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          ...(directConnection ? { directConnection } : {}),
          pool: { max: 6 },
          tenancy: {
            interceptor: false,
            migrations,
            registrySchema: REGISTRY,
            maxStalenessMs: BOUND_MS,
            // Unknown ids are remembered this long while unsynced: creations then show within it.
            negativeCacheMs: BOUND_MS,
          },
        }),
      ],
    }).compile();
    apps.push(app);
    await app.init();
    return { tenants: app.get(TenantService), registry: app.get(TenantRegistry) };
  }

  beforeAll(() => {
    admin = adminPool(database.current.url, 4);
  });
  afterAll(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
    await proxy?.close();
    await admin.end();
  });

  it(
    `keeps every invariant for ${RUN_MS / 1000} s`,
    async () => {
      const seed = Number(process.env.LIFECYCLE_SEED ?? Math.floor(Math.random() * 2 ** 31));
      const rand = random(seed);
      const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)];
      try {
        const migrations = await folder({
          '001_projects.sql': 'CREATE TABLE {{tables.projects}} (id serial PRIMARY KEY);',
          '002_tasks.sql': 'CREATE TABLE {{tables.tasks}} (id serial PRIMARY KEY);',
        });
        let fileCount = 2;
        proxy = await startSilentProxy(database.current.url);
        const a = await boot(migrations, proxy.url);
        const b = await boot(migrations);
        await Promise.all([a.registry.whenSynced(), b.registry.whenSynced()]);

        const timeline: Timeline = new Map(
          IDS.map((id) => [id, [{ answer: 'unknown', from: 0, to: Infinity }]]),
        );
        const rowStatus = async (id: string) =>
          (
            await admin.query<{ status: TenantStatus }>(
              `SELECT status FROM ${REGISTRY}.tenants WHERE id = $1`,
              [id],
            )
          ).rows[0]?.status;
        /** Runs one change and records the state it leaves (committed somewhere in between). */
        const change = async (id: string, fn: () => Promise<unknown>) => {
          const startedAt = performance.now();
          try {
            await fn();
          } catch (err) {
            const expected =
              err instanceof TenantNotFoundError ||
              (err as Error).name === 'TenantAlreadyExistsError' ||
              (err as Error).name === 'TenantCreationError';
            if (!expected) throw err;
          }
          const endedAt = performance.now();
          const after = answerOf(await rowStatus(id));
          const states = timeline.get(id)!;
          const last = states.at(-1)!;
          if (last.answer !== after) {
            last.to = endedAt;
            states.push({ answer: after, from: startedAt, to: Infinity });
          }
        };

        const observations: Observation[] = [];
        let running = true;
        const observe = async (name: string, registry: TenantRegistry) => {
          while (running) {
            const id = pick(IDS);
            const startedAt = performance.now();
            let answer: Answer;
            try {
              await registry.require(id);
              answer = 'active';
            } catch (err) {
              if (err instanceof TenantSuspendedError) answer = 'suspended';
              else if (err instanceof TenantNotFoundError) answer = 'unknown';
              else throw err;
            }
            observations.push({
              instance: name,
              id,
              answer,
              startedAt,
              endedAt: performance.now(),
            });
            await new Promise((resolve) => setTimeout(resolve, 5));
          }
        };
        const observers = [observe('a', a.registry), observe('b', b.registry)];

        let silentUntil = 0;
        const deadline = performance.now() + RUN_MS;
        while (performance.now() < deadline) {
          const now = performance.now();
          if (silentUntil && now >= silentUntil) {
            proxy.restore();
            silentUntil = 0;
          }
          // While the proxy is silent, instance a cannot open connections of its own.
          const actor = silentUntil ? b : pick([a, b]);
          const id = pick(IDS);
          const roll = rand();
          if (roll < 0.2) await change(id, () => actor.tenants.create(id));
          else if (roll < 0.32) await change(id, () => actor.tenants.drop(id));
          else if (roll < 0.45) await change(id, () => actor.tenants.suspend(id));
          else if (roll < 0.58) await change(id, () => actor.tenants.resume(id));
          else if (roll < 0.68) {
            const status = pick(['active', 'suspended']);
            await change(id, () =>
              admin.query(
                `UPDATE ${REGISTRY}.tenants SET status = $2 WHERE id = $1 AND status IN ('active', 'suspended')`,
                [id, status],
              ),
            );
          } else if (roll < 0.74) {
            await admin.query(`UPDATE ${REGISTRY}.tenants SET metadata = $2 WHERE id = $1`, [
              id,
              JSON.stringify({ n: Math.floor(rand() * 1000) }),
            ]);
          } else if (roll < 0.82) {
            const summary = await actor.tenants.migrateAll();
            expect(summary.failed).toEqual([]);
          } else if (roll < 0.86 && fileCount < 4) {
            fileCount++;
            await write(migrations, {
              [`00${fileCount}_more.sql`]: `CREATE TABLE {{tables.more${fileCount}}} (id int);`,
            });
          } else if (roll < 0.93) {
            await admin.query(
              // This database only: the listeners of other test files on the server are not ours.
              "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'nestjs-pg-tenancy:listener'",
            );
          } else if (!silentUntil) {
            proxy.silence();
            silentUntil = now + 500 + rand() * 2_500;
          }
          await new Promise((resolve) => setTimeout(resolve, rand() * 60));
        }
        proxy.restore();
        running = false;
        await Promise.all(observers);

        // No answer came from a state older than the bound.
        const stale = observations.filter((o) => {
          const states = timeline.get(o.id)!;
          return !states.some(
            (s) => s.answer === o.answer && s.from <= o.endedAt && s.to >= o.startedAt - BOUND_MS,
          );
        });
        // On failure, show each stale answer with the states its tenant went through.
        expect(stale.slice(0, 3).map((o) => ({ ...o, states: timeline.get(o.id) }))).toEqual([]);
        expect(observations.length).toBeGreaterThan(100);

        // Settled: every instance agrees with the table.
        await Promise.all([a.registry.whenSynced(), b.registry.whenSynced()]);
        const final = await b.tenants.migrateAll();
        expect(final.failed).toEqual([]);
        const { rows } = await admin.query<{
          id: string;
          status: TenantStatus;
          schema_name: string;
        }>(`SELECT id, status, schema_name FROM ${REGISTRY}.tenants ORDER BY id`);
        const table = Object.fromEntries(rows.map((r) => [r.id, r.status]));
        for (const [name, instance] of [
          ['a', a],
          ['b', b],
        ] as const) {
          await new Promise((resolve) => setTimeout(resolve, BOUND_MS));
          const seen = Object.fromEntries(
            instance.registry
              .entries()
              .map((e) => [e.info.id, e.info.status] as const)
              .sort(([x], [y]) => (x < y ? -1 : 1)),
          );
          expect({ instance: name, seen }).toEqual({ instance: name, seen: table });
        }
        // No schema without a row; every served row has its schema and full history.
        const orphans = await admin.query(
          `SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant_z%'
           AND nspname NOT IN (SELECT schema_name FROM ${REGISTRY}.tenants)`,
        );
        expect(orphans.rows).toEqual([]);
        for (const row of rows) {
          expect(row.status === 'active' || row.status === 'suspended').toBe(true);
          const history = await admin.query(
            `SELECT count(*)::int AS n FROM ${row.schema_name}.schema_migrations`,
          );
          expect({ id: row.id, files: history.rows[0].n }).toEqual({
            id: row.id,
            files: fileCount,
          });
        }
      } catch (err) {
        (err as Error).message =
          `Randomized lifecycle test failed with LIFECYCLE_SEED=${seed}:\n${(err as Error).message}`;
        throw err;
      }
    },
    RUN_MS + 90_000,
  );
});
