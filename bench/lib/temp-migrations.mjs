// Migration folders written to a temporary directory for a suite, removed by `remove()`.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * @param {string} prefix  directory name prefix
 * @param {Record<string, string>} files  `NNN_name.sql` → SQL text
 * @returns {Promise<{ dir: string, remove(): Promise<void> }>}
 */
export async function writeMigrations(prefix, files) {
  const dir = await mkdtemp(path.join(tmpdir(), `${prefix}-`));
  for (const [name, sql] of Object.entries(files)) await writeFile(path.join(dir, name), sql);
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** Runs `fn` over `items` with at most `limit` calls in flight; resolves when all settled. */
export async function mapLimit(items, limit, fn) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
