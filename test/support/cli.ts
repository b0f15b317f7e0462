import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { write } from './migrations.js';

/** The built CLI (`npm run build` first; `pretest` does). */
export const CLI_BIN = resolve('dist/cli/bin.js');

/** What one run of the CLI printed, and its exit code. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI with `args` in a child process; resolves (never rejects) when it exits. */
export function runCli(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CliRun> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [CLI_BIN, ...args],
      { cwd: options.cwd, env: options.env ?? process.env },
      (error, stdout, stderr) => {
        done({
          code: error ? (typeof error.code === 'number' ? error.code : 1) : 0,
          stdout,
          stderr,
        });
      },
    );
  });
}

/**
 * A CLI project in `root`: a tenant migrations folder with `tenantFiles`, a named schema `shared`
 * with one migration (`plans`), and `pg-tenancy.config.mjs` pointing at `url` with the registry in
 * `registrySchema`.
 */
export async function writeCliProject(
  root: string,
  url: string,
  registrySchema: string,
  tenantFiles: Record<string, string>,
): Promise<{ config: string; tenantDir: string }> {
  const tenantDir = join(root, 'tenant');
  const sharedDir = join(root, 'shared');
  await mkdir(tenantDir);
  await mkdir(sharedDir);
  await write(tenantDir, tenantFiles);
  await write(sharedDir, { '001_plans.sql': 'CREATE TABLE {{tables.plans}} (id int);' });
  const config = join(root, 'pg-tenancy.config.mjs');
  await writeFile(
    config,
    `export default ${JSON.stringify({
      connection: url,
      schemas: { shared: { migrations: sharedDir } },
      tenancy: { migrations: tenantDir, registrySchema },
    })};\n`,
  );
  return { config, tenantDir };
}
