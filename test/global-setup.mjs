// Runs in Jest's parent process, outside its TypeScript transform, so it uses the built harness
// (`npm test` builds first). One PostgreSQL serves the whole run: DATABASE_URL when set,
// otherwise an embedded server in a temporary directory. Workers inherit the environment, and
// every test file creates a database of its own on that server (test/support/database.ts).
import { startEmbeddedPostgres } from '../dist/testing/index.js';

export default async function globalSetup() {
  if (process.env.DATABASE_URL) return;
  const server = await startEmbeddedPostgres();
  process.env.DATABASE_URL = server.url;
  globalThis.__pgTestServer = server;
}
