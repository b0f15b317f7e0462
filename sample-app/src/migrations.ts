import { fileURLToPath } from 'node:url';

/**
 * The absolute path of `sample-app/migrations/<name>`, resolved from this file (in `src/` or
 * `dist/`, both next to `migrations/`) rather than from the working directory, so the app finds
 * its migrations wherever it is started from.
 */
export function migrationsFolder(name: string): string {
  return fileURLToPath(new URL(`../migrations/${name}`, import.meta.url));
}
