import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../../lib/testing/index.js';

export type { TestDatabase };

/** A database of this test file's own, dropped in afterAll. */
export function useTestDatabase(): { readonly current: TestDatabase } {
  const holder = {} as { current: TestDatabase };
  beforeAll(async () => {
    holder.current = await createTestDatabase();
  });
  afterAll(async () => {
    await holder.current?.drop();
  });
  return holder;
}

/** A pool for direct checks, closed by the caller. */
export function adminPool(url: string, max = 2): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max });
  pool.on('error', () => undefined);
  return pool;
}
