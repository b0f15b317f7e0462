import { createHash } from 'node:crypto';
import type { MigrationFile } from '../migrations/migration-files.js';

/** SHA-256 over the checksums of the first `version` files: "these exact files were applied". */
export function migrationsDigest(files: readonly MigrationFile[], version: number): string {
  return createHash('sha256')
    .update(
      files
        .slice(0, version)
        .map((f) => f.checksum)
        .join(','),
    )
    .digest('hex');
}
