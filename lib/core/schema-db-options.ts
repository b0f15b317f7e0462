import type { PreparedStatementOptions } from '../connection/statement-cache-options.js';

/** Options of {@link SchemaDb.create}. */
export interface SchemaDbCreateOptions {
  /**
   * Managed prepared statements for this manager and its `withSchema()` managers (see
   * `PreparedStatementOptions`). `true` stands for `{ enabled: true }`, an object without
   * `enabled` for `'auto'`. Each `create()` call gets a cache (and a server-side bound) of its
   * own: create one manager with it and derive the others with `withSchema()`.
   * Default: off (the module's managers default to `'auto'`).
   */
  preparedStatements?: boolean | 'auto' | PreparedStatementOptions;
}
