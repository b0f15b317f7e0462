// CPU time the server spent for a pool: the pool's backends' user+system time, read from
// /proc/<pid>/stat. Only when PostgreSQL runs on this machine (the embedded server, or a local
// DATABASE_URL); unlike queries/s it barely moves when other jobs share the cores.
import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** The backend pids of `count` connections of `pool`, held at once; `undefined` when not local. */
export async function backendPids(pool, count) {
  const clients = [];
  try {
    for (let i = 0; i < count; i++) clients.push(await pool.connect());
    const pids = [];
    for (const c of clients)
      pids.push((await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid);
    return pids.every((pid) => cpuTicks(pid) !== undefined) ? pids : undefined;
  } finally {
    for (const c of clients) c.release();
  }
}

function cpuTicks(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}

/** Total CPU of `pids` so far, in microseconds. */
export function serverCpuMicros(pids) {
  return pids.reduce((sum, pid) => sum + (cpuTicks(pid) ?? 0), 0) * (1e6 / TICKS_PER_SECOND);
}
