import pg from 'pg';

/**
 * Drops `role` after the file's tests. Roles belong to the whole server, not to the file's
 * database: its grants went with the database (register this after `useTestDatabase()` or
 * `useTenancyApps()`, whose hooks drop the database first).
 */
export function dropRoleAfterAll(role: string): void {
  afterAll(async () => {
    const admin = new pg.Client(process.env.DATABASE_URL);
    await admin.connect();
    try {
      await admin.query(`DROP ROLE IF EXISTS "${role}"`);
    } finally {
      await admin.end();
    }
  });
}
