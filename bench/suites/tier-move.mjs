// Moving a tenant between tiers under load: a pooled tenant with N rows (1,000,000; quick 50,000)
// across the sample app's projects and tasks is moved to its own schema and back with
// TenantService.moveTier() while 4 workers read (point lookups) and write (inserts, updates of
// their own rows) through TenantService.db(). Reported per direction: rows copied, changes caught
// up, the write pause, time per phase, requests served and failed, the slowest request.
// Correctness: 0 failed requests, the seeded rows' count and md5 unchanged in the new home, and
// every acknowledged write present exactly once.
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DatabaseModule, TenantService } from '../../dist/index.js';
import { withClient } from '../lib/postgres.mjs';
import { fmtInt } from '../lib/table.mjs';

const FULL = { rows: 1_000_000 };
const QUICK = { rows: 50_000 };
const WORKERS = 4;
const STALE_MS = 500;
const MIGRATIONS = fileURLToPath(new URL('../../sample-app/migrations/tenant', import.meta.url));

async function bootApp(url, role) {
  class AppModule {}
  Module({
    imports: [
      DatabaseModule.forRoot({
        connection: url,
        pool: { max: 10, applicationName: 'bench_tier_move' },
        tenancy: {
          registrySchema: 'bench_moves',
          migrations: MIGRATIONS,
          interceptor: false,
          pooled: { role },
          maxStalenessMs: STALE_MS,
        },
      }),
    ],
  })(AppModule);
  return NestFactory.createApplicationContext(AppModule, { logger: false });
}

/** Count and md5 of the seeded rows (not the load's), without the tenant column. */
async function fingerprint(url, tier) {
  const from = (t) =>
    tier === 'pooled'
      ? `tenancy_pooled.${t} WHERE tenant_id = 'big'`
      : `tenant_big.${t} WHERE true`;
  return withClient(url, async (c) => {
    const { rows } = await c.query(`SELECT
      (SELECT count(*) || ':' || md5(string_agg(row(id, name, description, created_at)::text, ',' ORDER BY id))
         FROM ${from('projects')} AND name NOT LIKE 'load-%') AS projects,
      (SELECT count(*) || ':' || md5(string_agg(row(id, project_id, title, done, assignee_id, created_at)::text, ',' ORDER BY id))
         FROM ${from('tasks')}) AS tasks`);
    return rows[0];
  });
}

/** Reads and writes until stopped; every failure is kept. */
function load(tenants, projects) {
  const state = { ops: 0, failures: [], inserted: [], slowestMs: 0, running: true };
  const worker = async (w) => {
    for (let i = 0; state.running; i++) {
      const t0 = performance.now();
      try {
        const db = await tenants.db('big');
        if (i % 3 === 0) {
          const id = await db.fetchValue(
            'INSERT INTO {{tables.projects}} (name) VALUES ($1) RETURNING id',
            [`load-${w}-${i}`],
          );
          state.inserted.push(String(id));
        } else if (i % 3 === 1 && state.inserted.length > 0) {
          const mine = state.inserted[i % state.inserted.length];
          await db.execute("UPDATE {{tables.projects}} SET description = 'u' WHERE id = $1", [
            mine,
          ]);
        } else {
          await db.fetchOne('SELECT * FROM {{tables.projects}} WHERE id = $1', [
            1 + (i % projects),
          ]);
        }
        state.ops++;
      } catch (err) {
        state.failures.push(String(err?.message ?? err));
      }
      state.slowestMs = Math.max(state.slowestMs, performance.now() - t0);
    }
  };
  const done = Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
  return {
    state,
    stop: async () => {
      state.running = false;
      await done;
      return state;
    },
  };
}

export default {
  name: 'tier-move',
  description:
    'a tenant with 1,000,000 rows moved pooled → schema → pooled under read+write load: failures, write pause, phases, checksums',
  async run(ctx) {
    const config = ctx.quick ? QUICK : FULL;
    const failures = [];
    const notes = [];
    if (ctx.quick)
      notes.push(`quick mode: ${fmtInt(config.rows)} rows (full: ${fmtInt(FULL.rows)})`);
    const role = `bench_pooled_${randomUUID().slice(0, 8)}`;
    ctx.defer(() => withClient(ctx.serverUrl, (c) => c.query(`DROP ROLE IF EXISTS ${role}`)));
    const database = await ctx.createDatabase('bench_tier_move');
    ctx.defer(() =>
      withClient(database.url, (c) => c.query(`DROP OWNED BY ${role}`)).catch(() => undefined),
    );
    const app = await bootApp(database.url, role);
    const rows = [];
    try {
      const tenants = app.get(TenantService);
      await tenants.create('big', { tier: 'pooled' });
      await tenants.create('neighbour', { tier: 'pooled' });
      const projects = Math.round(config.rows / 10);
      const db = await tenants.db('big');
      const seedStarted = performance.now();
      await db.execute(
        `INSERT INTO {{tables.projects}} (name, description, created_at)
         SELECT 'p' || g, repeat('d', g % 40), '2026-01-01'::timestamptz + g * interval '1 second'
           FROM generate_series(1, $1::int) g`,
        [projects],
      );
      await db.execute(
        `INSERT INTO {{tables.tasks}} (project_id, title, done, created_at)
         SELECT p.id, 'task ' || g, g % 3 = 0, p.created_at FROM {{tables.projects}} p, generate_series(1, 9) g`,
      );
      ctx.log(
        `seeded ${fmtInt(config.rows)} rows in ${Math.round(performance.now() - seedStarted)} ms`,
      );
      const before = await fingerprint(database.url, 'pooled');
      const running = load(tenants, projects);
      try {
        for (const to of ['schema', 'pooled']) {
          const opsBefore = running.state.ops;
          running.state.slowestMs = 0;
          const started = performance.now();
          const moved = await tenants.moveTier('big', to);
          const seconds = (performance.now() - started) / 1000;
          ctx.log(
            `moved to ${to} in ${seconds.toFixed(1)} s, pause ${moved.pauseMs.toFixed(0)} ms`,
          );
          const after = await fingerprint(database.url, to);
          if (after.projects !== before.projects || after.tasks !== before.tasks) {
            failures.push(
              `after the move to ${to}, the seeded rows differ: ${JSON.stringify({ before, after })}`,
            );
          }
          rows.push({
            direction: `${moved.from} → ${to}`,
            copied: moved.copiedRows,
            replayed: moved.replayedChanges,
            pauseMs: Math.round(moved.pauseMs),
            phases: Object.fromEntries(
              Object.entries(moved.phases).map(([k, v]) => [k, Math.round(v)]),
            ),
            totalS: Math.round(seconds * 10) / 10,
            requests: running.state.ops - opsBefore,
            slowestMs: Math.round(running.state.slowestMs),
            checksum:
              after.projects === before.projects && after.tasks === before.tasks
                ? 'equal'
                : 'DIFFERENT',
          });
        }
      } finally {
        await running.stop();
      }
      const { state } = running;
      if (state.failures.length > 0) {
        failures.push(`${state.failures.length} failed request(s), e.g. ${state.failures[0]}`);
      }
      const kept = await (
        await tenants.db('big')
      ).fetchValue(
        "SELECT count(*)::int FROM {{tables.projects}} WHERE name LIKE 'load-%' AND id = ANY($1::bigint[])",
        [state.inserted],
      );
      const loadRows = await (
        await tenants.db('big')
      ).fetchValue("SELECT count(*)::int FROM {{tables.projects}} WHERE name LIKE 'load-%'");
      if (kept !== state.inserted.length || loadRows !== state.inserted.length) {
        failures.push(
          `acknowledged inserts: ${state.inserted.length}, found ${kept}, load rows in total ${loadRows}`,
        );
      }
      notes.push(
        `${fmtInt(state.ops)} requests during the moves (${WORKERS} workers), ${state.failures.length} failed; ${fmtInt(state.inserted.length)} acknowledged inserts, each present once`,
      );
    } finally {
      await app.close();
    }
    return {
      failures,
      notes,
      data: { rows: config.rows, moves: rows },
      tables: [
        {
          title: `tier-move: ${fmtInt(config.rows)} rows under read+write load`,
          columns: [
            { key: 'direction', label: 'direction', align: 'left' },
            { key: 'copied', label: 'copied', format: fmtInt },
            { key: 'replayed', label: 'replayed', format: fmtInt },
            { key: 'pauseMs', label: 'pause ms' },
            { key: 'prepare', label: 'prepare ms' },
            { key: 'copy', label: 'copy ms' },
            { key: 'catchUp', label: 'catch-up ms' },
            { key: 'grace', label: 'grace ms' },
            { key: 'cleanup', label: 'cleanup ms' },
            { key: 'totalS', label: 'total s' },
            { key: 'requests', label: 'requests', format: fmtInt },
            { key: 'slowestMs', label: 'slowest ms' },
            { key: 'checksum', label: 'checksum', align: 'left' },
          ],
          rows: rows.map((r) => ({ ...r, ...r.phases })),
        },
      ],
    };
  },
};
