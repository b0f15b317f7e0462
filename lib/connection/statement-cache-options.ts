// `preparedStatements`: the options of the managed statement cache, their defaults and checks.
import { booleanOption, describeValue, integerOption } from '../shared/option-values.js';
import { InvalidOptionsError } from '../shared/errors.js';

/**
 * Managed prepared statements: each pooled connection keeps its most recently used statements
 * parsed and planned on the server, so a repeated query skips PostgreSQL's parse and plan steps.
 * Set with `preparedStatements` in the module options, or `SchemaDb.create(pool, schema, { preparedStatements })`.
 */
export interface PreparedStatementOptions {
  /**
   * `'auto'`: on, unless the first connection shows a pooler in front (its backend key differs
   * from `pg_backend_pid()`, as behind PgBouncer, whose transaction mode before 1.21 cannot keep
   * a statement on one server connection). `true`: always on (PgBouncer 1.21+ with
   * `max_prepared_statements` set, or a session-mode pooler). `false`: never.
   * Default: `'auto'` in the module; off for `SchemaDb.create()` unless given.
   */
  enabled?: boolean | 'auto';
  /**
   * Most statements kept per connection: the least recently used one is closed on the server
   * when a new one is prepared beyond it, so server memory stays within
   * `maxPerConnection × pool.max` statements. Default: `1_000`.
   */
  maxPerConnection?: number;
  /**
   * Prepare a statement on its Nth use on a connection; until then it is sent unnamed, so SQL
   * run once (or evicted before it comes back, when there are far more distinct statements
   * than `maxPerConnection`) never pays for preparing. `1` prepares at first use.
   * Default: `2`.
   */
  prepareThreshold?: number;
  /**
   * Also prepare statements run inside a transaction. A prepared statement invalidated by a
   * schema change (SQLSTATE `0A000` after an `ALTER TABLE` changed a `SELECT *` result) aborts
   * the transaction: it fails with `PreparedStatementStaleError`, the statement is dropped, and
   * `transaction({ retries })` runs the transaction again. Outside transactions the query is
   * re-prepared and run again transparently. Default: `false`.
   */
  inTransactions?: boolean;
}

/** The prepared-statement options with every default filled in. */
export type ResolvedPreparedStatementOptions = Readonly<Required<PreparedStatementOptions>>;

/** The defaults, in one place. */
export const PREPARED_STATEMENT_DEFAULTS: ResolvedPreparedStatementOptions = Object.freeze({
  enabled: 'auto',
  maxPerConnection: 1_000,
  prepareThreshold: 2,
  inTransactions: false,
});

/**
 * Fills in defaults: `true`/`false` stand for `{ enabled }`.
 *
 * @throws InvalidOptionsError
 */
export function resolvePreparedStatementOptions(
  options: boolean | 'auto' | PreparedStatementOptions | undefined,
  fallback: ResolvedPreparedStatementOptions = PREPARED_STATEMENT_DEFAULTS,
): ResolvedPreparedStatementOptions {
  if (options === undefined) return fallback;
  const given: PreparedStatementOptions =
    typeof options === 'object' && options !== null ? options : { enabled: options };
  if (typeof given !== 'object' || given === null) {
    throw new InvalidOptionsError(
      `preparedStatements must be true, false, 'auto' or an object, received ${describeValue(options)}.`,
    );
  }
  for (const key of Object.keys(given)) {
    if (!(key in PREPARED_STATEMENT_DEFAULTS)) {
      throw new InvalidOptionsError(
        `Unknown preparedStatements option "${key}". Known options: ${Object.keys(PREPARED_STATEMENT_DEFAULTS).join(', ')}.`,
      );
    }
  }
  return Object.freeze({
    enabled: enabledOption(given.enabled ?? fallback.enabled),
    maxPerConnection:
      given.maxPerConnection === undefined
        ? fallback.maxPerConnection
        : integerOption(given.maxPerConnection, 'preparedStatements.maxPerConnection', 1),
    prepareThreshold:
      given.prepareThreshold === undefined
        ? fallback.prepareThreshold
        : integerOption(given.prepareThreshold, 'preparedStatements.prepareThreshold', 1),
    inTransactions:
      given.inTransactions === undefined
        ? fallback.inTransactions
        : booleanOption(given.inTransactions, 'preparedStatements.inTransactions'),
  });
}

function enabledOption(value: unknown): boolean | 'auto' {
  if (value === 'auto') return 'auto';
  try {
    return booleanOption(value, 'preparedStatements.enabled');
  } catch {
    throw new InvalidOptionsError(
      `preparedStatements.enabled must be true, false or 'auto', received ${describeValue(value)}.`,
    );
  }
}
