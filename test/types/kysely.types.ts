// Type-level tests of kyselyFor(), checked by `npm run typecheck` (tsc over test/), never run.
// Each `@ts-expect-error` must meet an error: if a wrong column or table ever compiled, the
// directive would be unused (TS2578) and the typecheck would fail.
import type { Generated, Kysely } from 'kysely';
import type { SchemaDb } from '../../lib/index.js';
import { kyselyFor } from '../../lib/kysely/index.js';

interface DB {
  projects: { id: Generated<number>; name: string; archived_at: Date | null };
}

type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(): T | undefined {
  return undefined;
}

export async function typedQueries(db: SchemaDb): Promise<void> {
  const k: Kysely<DB> = kyselyFor<DB>(db);

  const _row = await k
    .selectFrom('projects')
    .select(['id', 'name'])
    .where('archived_at', 'is', null)
    .executeTakeFirstOrThrow();
  expectType<Equal<typeof _row, { id: number; name: string }>>();

  // @ts-expect-error -- no such column
  await k.selectFrom('projects').select('title').execute();

  // @ts-expect-error -- no such table
  await k.selectFrom('users').selectAll().execute();

  // @ts-expect-error -- a column of the wrong type
  await k.insertInto('projects').values({ name: 42 }).execute();

  // @ts-expect-error -- a required column is missing
  await k.insertInto('projects').values({}).execute();

  await k.transaction().execute(async (trx) => {
    // @ts-expect-error -- the transaction is typed the same way
    await trx.updateTable('projects').set({ nme: 'x' }).execute();
  });
}
