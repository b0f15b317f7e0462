import type pg from 'pg';
import type { MigrationFile } from '../../migrations/migration-files.js';
import { readMigrationStatus } from '../../migrations/migration-history.js';
import type { MoveContext } from './tier-move-sql.js';

/**
 * The number of migration files both homes of a move have applied, read in the flip's
 * transaction. They must be the same: a migration that ran on one home during the move (the
 * pooled schema's, in a deploy) would leave the new home without its columns, or have the
 * registry record a version the new schema lacks. @throws Error naming both counts otherwise.
 */
export async function sameMigrations(
  client: pg.ClientBase,
  ctx: MoveContext,
  files: readonly MigrationFile[],
): Promise<number> {
  const source = await appliedCount(client, ctx.source.schema, files);
  const target = await appliedCount(client, ctx.target.schema, files);
  if (source !== target) {
    throw new Error(
      `a migration ran during the move: the ${ctx.source.tier} home has ${source} migration files applied and the ${ctx.target.tier} home ${target}. Run repair() to undo the move, then migrateAll(), then move again`,
    );
  }
  return target;
}

/** How many of `files` `schema`'s migration history records as applied. */
export async function appliedCount(
  client: pg.ClientBase,
  schema: string,
  files: readonly MigrationFile[],
): Promise<number> {
  return (await readMigrationStatus(client, schema, files)).applied.length;
}
