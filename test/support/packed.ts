import { execFile } from 'node:child_process';
import { chmod, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface Run {
  stdout: string;
  stderr: string;
}

/**
 * The environment a user's shell would give npm: without the `npm_*` variables of the `npm test`
 * that runs us (they would point npm at this repository) or Jest's worker id (a Jest started in
 * it would take itself for a worker), and with the warm cache preferred so an install does not
 * revalidate every package with the registry.
 */
export function userNpmEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^npm_/i.test(key) && key !== 'JEST_WORKER_ID') env[key] = value;
  }
  return {
    ...env,
    npm_config_prefer_offline: 'true',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
    ...extra,
  };
}

/** Runs a command; rejects with its output when it fails. */
export async function run(
  command: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<Run> {
  try {
    return await promisify(execFile)(command, args, {
      cwd: options.cwd,
      env: options.env ?? userNpmEnv(),
      timeout: options.timeoutMs ?? 300_000,
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (err) {
    const { stdout, stderr, message } = err as Error & Partial<Run>;
    throw new Error(
      `${command} ${args.join(' ')} (in ${options.cwd}) failed: ${message}\n${stdout ?? ''}\n${stderr ?? ''}`,
    );
  }
}

/** The library as users get it: `npm pack` of the built package. Returns the tarball's path. */
async function packLibrary(destination: string): Promise<string> {
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', destination], {
    cwd: ROOT,
  });
  const [{ filename }] = JSON.parse(stdout) as [{ filename: string }];
  return join(destination, filename);
}

/**
 * A temporary directory holding the packed tarball, where a test makes its projects.
 * World-readable, since an embedded server started there as root runs as `postgres`.
 */
export async function scratchDirectory(): Promise<{ root: string; tarball: string }> {
  const root = await mkdtemp(join(tmpdir(), 'pg-tenancy-packed-'));
  await chmod(root, 0o755);
  const tarball = await packLibrary(root);
  return { root, tarball };
}
