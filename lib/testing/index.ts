export {
  createTestDatabase,
  type TestDatabase,
  type TestDatabaseOptions,
} from './test-database.js';
export { EmbeddedPostgresError } from './embedded/embedded.errors.js';
export {
  startEmbeddedPostgres,
  type EmbeddedPostgresOptions,
  type EmbeddedPostgresServer,
} from './embedded/embedded-server.js';
export {
  startEmbeddedReplication,
  type EmbeddedReplication,
  type EmbeddedReplicationOptions,
} from './embedded/embedded-replication.js';
