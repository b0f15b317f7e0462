import { PgTenancyError } from '../shared/errors.js';

/**
 * Thrown by Kysely's `stream()` on an instance from `kyselyFor()`: the module runs each query
 * to completion on a pooled connection, with no server-side cursor to read rows in chunks.
 */
export class KyselyStreamNotSupportedError extends PgTenancyError {
  constructor() {
    super(
      'stream() is not supported on a Kysely instance from kyselyFor(): read large results in pages ' +
        '(keyset pagination with limit), or use the injected pg.Pool with pg-cursor.',
    );
  }
}
