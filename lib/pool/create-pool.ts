import { Logger, type LoggerService } from '@nestjs/common';
import pg from 'pg';
import { describeTarget } from './connection-errors.js';
import { toPgPoolConfig, type ConnectionSettings } from './pool-options.js';

/**
 * Creates the one shared pool. Its `error` listener turns errors on idle clients (the server
 * restarting, `pg_terminate_backend`, a network drop) into a warning: without a listener,
 * `pg` re-emits them as an uncaught exception and the process dies. The pool discards the
 * broken client and opens a fresh one on the next checkout.
 *
 * No `connect` hook sets session state: tenancy is carried by qualified names, never by a
 * session, so every connection can serve every schema (see the README on PgBouncer for the
 * startup parameters that carry the server-side timeouts).
 */
export function createPool(
  settings: ConnectionSettings,
  logger: LoggerService = new Logger('DatabaseModule'),
): pg.Pool {
  const config = toPgPoolConfig(settings);
  const pool = new pg.Pool(config);
  const target = describeTarget(config);
  pool.on('error', (err: Error & { code?: string }) => {
    logger.warn(
      `Idle connection to ${target} failed and was discarded (${err.code ? `${err.code}: ` : ''}${err.message}); the pool will reconnect on demand.`,
    );
  });
  return pool;
}
