import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

/** What the figures were measured on. */
export function machineInfo() {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cpuCount: cpus.length,
    totalMemoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
  };
}

/** One line for console and chart headers. */
export function describeMachine(machine, postgresVersion) {
  const pg = postgresVersion?.match(/PostgreSQL [\d.]+/)?.[0] ?? 'PostgreSQL ?';
  return `${machine.cpuModel} × ${machine.cpuCount} CPUs, ${machine.totalMemoryGiB} GiB, Node ${machine.node}, ${pg}`;
}

/** The library under test: package version, git commit, and whether lib/ had uncommitted edits. */
export function libraryInfo() {
  const root = new URL('../../', import.meta.url);
  const git = (...args) => {
    // --no-optional-locks: read-only, never refreshes the index
    const r = spawnSync('git', ['--no-optional-locks', ...args], { cwd: root, encoding: 'utf8' });
    return r.status === 0 ? r.stdout.trim() : undefined;
  };
  const status = git('status', '--porcelain', '--', 'lib');
  return {
    version: JSON.parse(readFileSync(new URL('package.json', root), 'utf8')).version,
    commit: git('rev-parse', '--short', 'HEAD'),
    libUncommittedChanges: status === undefined ? undefined : status.length > 0,
  };
}

/** 1, 5 and 15 minute load averages: a busy machine (other jobs) shows up here. */
export function loadAverage() {
  return os.loadavg().map((x) => Math.round(x * 100) / 100);
}
