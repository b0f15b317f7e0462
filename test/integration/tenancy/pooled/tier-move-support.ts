// Shared by the tier-move specs: seeding a tenant's projects and tasks, a fingerprint of its rows
// wherever they live, and a loop that reads and writes through TenantService while a move runs.
import type pg from 'pg';
import type { TenantService } from '../../../../lib/index.js';

/** Inserts `projects` projects with `tasksPer` tasks each, in one statement per table. */
export async function seed(
  tenants: TenantService,
  id: string,
  projects: number,
  tasksPer: number,
): Promise<void> {
  const db = await tenants.db(id);
  await db.execute(
    `INSERT INTO {{tables.projects}} (name, description)
     SELECT 'p' || g, repeat('x', g % 17) FROM generate_series(1, $1::int) g`,
    [projects],
  );
  await db.execute(
    `INSERT INTO {{tables.tasks}} (project_id, title, done)
     SELECT p.id, 't' || p.id || '-' || g, g % 2 = 0 FROM {{tables.projects}} p, generate_series(1, $1::int) g`,
    [tasksPer],
  );
}

/** Count and md5 of the tenant's rows (without the tenant column) in `schema`, pooled or not. */
export async function fingerprint(
  admin: pg.Pool,
  schema: string,
  id: string | null,
  /** A filter on the projects (the loop writes only projects). */
  projectsWhere = 'true',
): Promise<{ projects: string; tasks: string }> {
  const filter = id === null ? '' : ` AND tenant_id = '${id}'`;
  const sum = async (table: string, columns: string, where = 'true') => {
    const { rows } = await admin.query<{ n: string; md5: string | null }>(
      `SELECT count(*)::text || ':' || coalesce(md5(string_agg(row(${columns})::text, ',' ORDER BY id)), '') AS n
         FROM "${schema}"."${table}" WHERE ${where}${filter}`,
    );
    return rows[0].n;
  };
  return {
    projects: await sum('projects', 'id, name, description, created_at', projectsWhere),
    tasks: await sum('tasks', 'id, project_id, title, done, assignee_id, created_at'),
  };
}

/** What the load loop did: operations, failures, and the ids of the projects it inserted. */
export interface LoadReport {
  ops: number;
  failures: Error[];
  inserted: string[];
  updated: Map<string, Set<string>>;
  deleted: string[];
}

/**
 * Runs reads and writes on tenant `id` through `tenants.run()`/`tenants.db()` until `stop()`,
 * `workers` at a time: inserts (remembering acknowledged ids), updates of its own rows, deletes,
 * reads, and a transaction with retries. Every failure is recorded, none thrown.
 */
export function loadLoop(tenants: TenantService, id: string, workers = 3) {
  const report: LoadReport = {
    ops: 0,
    failures: [],
    inserted: [],
    updated: new Map(),
    deleted: [],
  };
  let running = true;
  let n = 0;
  const worker = async (w: number) => {
    while (running) {
      const i = n++;
      try {
        const db = await tenants.db(id);
        switch (i % 5) {
          case 0:
          case 1: {
            const pid = await db.fetchValue<string>(
              'INSERT INTO {{tables.projects}} (name) VALUES ($1) RETURNING id',
              [`load-${w}-${i}`],
            );
            report.inserted.push(String(pid));
            break;
          }
          case 2: {
            const pick = report.inserted[i % Math.max(1, report.inserted.length)];
            if (pick && !report.deleted.includes(pick)) {
              const name = `upd-${i}`;
              // Recorded before it is sent: a write that fails is reported as a failure anyway.
              await tenants.run(id, () =>
                db.execute('UPDATE {{tables.projects}} SET name = $2 WHERE id = $1', [pick, name]),
              );
              const names = report.updated.get(pick) ?? new Set<string>();
              names.add(name);
              report.updated.set(pick, names);
            }
            break;
          }
          case 3: {
            await db.fetchValue('SELECT count(*) FROM {{tables.tasks}}');
            break;
          }
          case 4: {
            const pick = report.inserted.length > 10 ? report.inserted[i % 10] : undefined;
            if (pick && !report.deleted.includes(pick) && i % 4 === 0) {
              await db.execute('DELETE FROM {{tables.projects}} WHERE id = $1', [pick]);
              report.deleted.push(pick);
            }
            break;
          }
        }
        report.ops++;
      } catch (err) {
        report.failures.push(err as Error);
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
  const done = Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
  return {
    report,
    async stop(): Promise<LoadReport> {
      running = false;
      await done;
      return report;
    },
  };
}
