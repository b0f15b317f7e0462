import type pg from 'pg';

const BROKEN_BY = Symbol('nestjs-pg-tenancy:brokenBy');
const WATCHED = Symbol('nestjs-pg-tenancy:watched');

type WatchedClient = pg.PoolClient & { [BROKEN_BY]?: Error; [WATCHED]?: true };

/**
 * Gives a checked-out client a permanent `error` listener, once per physical connection. Every
 * checkout the library makes itself goes through this. pg-pool listens only to idle clients:
 * without it, a backend ended while the client is checked out (between two statements of a
 * transaction, by `pg_terminate_backend`, `DROP DATABASE … WITH (FORCE)`, a restart or
 * `idle_in_transaction_session_timeout`) emits an unhandled `error` and crashes the process.
 * The error is remembered ({@link brokenBy}) so the client is discarded, not reused, when it is
 * released.
 */
export function watch(client: pg.PoolClient): void {
  const watched = client as WatchedClient;
  if (watched[WATCHED]) return;
  watched[WATCHED] = true;
  client.on('error', (err: Error) => {
    watched[BROKEN_BY] ??= err;
  });
}

/** The connection error a {@link watch}ed client has seen, if any: it must then be discarded. */
export function brokenBy(client: pg.PoolClient): Error | undefined {
  return (client as WatchedClient)[BROKEN_BY];
}
