import { startEmbeddedPostgres } from 'nestjs-pg-tenancy/testing';

/**
 * The server named by DATABASE_URL; without it, an embedded PostgreSQL for development whose
 * data is kept in .data/postgres. It stops by itself after the app has shut down. Its URL holds
 * the embedded server's fixed credentials (user and password `postgres`, loopback only).
 */
export async function databaseUrl(): Promise<string> {
  if (process.env.DATABASE_URL) return process.env.DATABASE_URL;
  const server = await startEmbeddedPostgres({ dataDir: '.data/postgres' });
  console.log(`Embedded PostgreSQL at ${server.url}, data in ${server.dataDir}`);
  return server.url;
}
