import pg from 'pg';
import { toAcquireError } from './connection-errors.js';

/** What a session needs from the shutdown gate (the `DrainController` implements it). */
export interface SessionTracker {
  /** @throws DatabaseShuttingDownError when new work is refused. */
  assertCanCheckout(): void;
  track(lease: { readonly client: pg.PoolClient; release(err?: Error): void }): void;
  untrack(lease: { readonly client: pg.PoolClient; release(err?: Error): void }): void;
  /** Calls `listener` once when shutdown begins, and waits for it before waiting for tracked work. */
  onDrain?(listener: () => void | Promise<void>): void;
}

/** Options of {@link openSession}. */
export interface SessionOptions {
  /** Counted by the shutdown drain (which waits for it, then cancels it). Default: none. */
  readonly tracker?: SessionTracker;
  /** Shown in `pg_stat_activity`. Default: the config's. */
  readonly applicationName?: string;
  /**
   * TCP keepalive, so a peer that vanished without closing (a NAT or load balancer timeout) is
   * noticed by the kernel. Default: `false`.
   */
  readonly keepAlive?: boolean;
  /** Most time `close()` waits for a polite goodbye before cutting the socket. Default: `2_000` ms. */
  readonly closeTimeoutMs?: number;
}

/** A dedicated connection (not pooled) and the one way to end it. */
export interface Session {
  readonly client: pg.Client;
  /** The connection error seen since it opened, if any. */
  readonly brokenBy: Error | undefined;
  /** Ends the connection, bounded in time; idempotent. */
  close(): Promise<void>;
  /**
   * Stops counting the session as work in flight and lets the process exit while it is open
   * (for a session kept idle by a {@link SessionKeeper}); {@link resume} undoes it.
   */
  park(): void;
  /** Counts the session again. @throws DatabaseShuttingDownError when new work is refused. */
  resume(): void;
}

/**
 * The library's own connections (registry DDL, provisioning and drop, the change listener,
 * migrations) all open here: an `error` listener is installed before anything can fail, so a
 * terminated backend (`pg_terminate_backend`, a restart) never crashes the process; the session
 * is counted by the shutdown drain when a tracker is given; and closing it never hangs on a
 * peer that stopped answering.
 */
export async function openSession(
  config: pg.ClientConfig,
  options: SessionOptions = {},
): Promise<Session> {
  options.tracker?.assertCanCheckout();
  const client = new pg.Client({
    ...config,
    ...(options.applicationName ? { application_name: options.applicationName } : {}),
    ...(options.keepAlive ? { keepAlive: true, keepAliveInitialDelayMillis: 1_000 } : {}),
  });
  let brokenBy: Error | undefined;
  client.on('error', (err: Error) => {
    brokenBy ??= err;
  });
  try {
    await client.connect();
  } catch (err) {
    await destroy(client);
    throw toAcquireError(err, config);
  }
  let closing: Promise<void> | undefined;
  const lease = {
    client: client as unknown as pg.PoolClient,
    // The drain calls this at its timeout: end the session so its transaction rolls back.
    release: () => void close(),
  };
  const close = (): Promise<void> => {
    closing ??= (async () => {
      options.tracker?.untrack(lease);
      if (brokenBy) return destroy(client);
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), options.closeTimeoutMs ?? 2_000);
      });
      const ended = await Promise.race([client.end().then(() => 'ended' as const), late]).catch(
        () => 'late' as const,
      );
      clearTimeout(timer);
      if (ended === 'late') await destroy(client);
    })();
    return closing;
  };
  options.tracker?.track(lease);
  // pg's Client has ref()/unref() (its socket), not in @types/pg.
  const socket = client as unknown as { ref(): void; unref(): void };
  return {
    client,
    get brokenBy() {
      return brokenBy;
    },
    close,
    park() {
      options.tracker?.untrack(lease);
      socket.unref();
    },
    resume() {
      options.tracker?.assertCanCheckout();
      socket.ref();
      options.tracker?.track(lease);
    },
  };
}

/**
 * Dedicated sessions kept open between uses, so that frequent short jobs (creating tenants) do
 * not pay a connection start and a cold server cache each time. At most `max` idle sessions are
 * kept, each closed after `idleMs` unused and all of them when shutdown begins; an idle session
 * never keeps the process alive, and one that no longer answers a ping is replaced. A session goes back only when healthy and outside a
 * transaction, after `DISCARD ALL` unless the caller knows it ran only its own SQL (so settings
 * a migration file made never reach the next job).
 */
export class SessionKeeper {
  readonly #idle: { session: Session; timer: NodeJS.Timeout }[] = [];
  #closed = false;

  constructor(
    private readonly config: pg.ClientConfig,
    private readonly options: SessionOptions & {
      /** Most idle sessions kept. */
      readonly max: number;
      /** An idle session is closed after this long unused. */
      readonly idleMs: number;
      /** A kept session that does not answer a ping within this is replaced. */
      readonly pingTimeoutMs: number;
    },
  ) {
    options.tracker?.onDrain?.(() => this.close());
  }

  /** An idle session, or a new one. @throws DatabaseShuttingDownError when new work is refused. */
  async acquire(): Promise<Session> {
    this.options.tracker?.assertCanCheckout();
    for (let kept = this.#idle.pop(); kept; kept = this.#idle.pop()) {
      clearTimeout(kept.timer);
      if (kept.session.brokenBy) {
        await kept.session.close();
        continue;
      }
      try {
        kept.session.resume();
      } catch (err) {
        await kept.session.close();
        throw err;
      }
      // A NAT or load balancer may have dropped it silently while it sat idle, and a query on
      // it would then wait for ever.
      if (await answersWithin(kept.session, this.options.pingTimeoutMs)) return kept.session;
      void kept.session.close();
    }
    return openSession(this.config, this.options);
  }

  /**
   * Returns `session` for reuse, or closes it (broken, mid-transaction, or enough kept). With
   * `reset`, its session state is discarded first (after running SQL the library did not write).
   */
  async release(session: Session, reset = true): Promise<void> {
    const { client } = session;
    const outside = client.getTransactionStatus() === 'I';
    if (this.#closed || session.brokenBy || !outside || this.#idle.length >= this.options.max) {
      return session.close();
    }
    if (reset) {
      try {
        await client.query('DISCARD ALL');
      } catch {
        return session.close();
      }
    }
    if (this.#closed || session.brokenBy) return session.close();
    session.park();
    const kept = {
      session,
      timer: setTimeout(() => {
        const at = this.#idle.indexOf(kept);
        if (at >= 0) this.#idle.splice(at, 1);
        void session.close();
      }, this.options.idleMs),
    };
    kept.timer.unref();
    this.#idle.push(kept);
  }

  /** Closes the idle sessions; sessions released afterwards are closed at once. */
  async close(): Promise<void> {
    this.#closed = true;
    const idle = this.#idle.splice(0);
    for (const { timer } of idle) clearTimeout(timer);
    await Promise.all(idle.map(({ session }) => session.close()));
  }
}

/** Cuts the socket without a goodbye (for a peer that is gone or silent). */
async function destroy(client: pg.Client): Promise<void> {
  const stream = (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection
    ?.stream;
  stream?.destroy();
}

/** Whether `session` answers `SELECT 1` within `timeoutMs` (`false` on an error too). */
export async function answersWithin(session: Session, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([
      session.client.query('SELECT 1').then(
        () => true,
        () => false,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `fn` in a transaction on `client`; rolls back (ignoring a second failure) on error. */
export async function inTransaction<T>(
  client: pg.ClientBase,
  fn: () => Promise<T>,
  begin = 'BEGIN',
): Promise<T> {
  await client.query(begin);
  try {
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/**
 * Runs `fn` with `search_path` set to `path` on `client` (a session: the setting is the
 * connection's, not the transaction's), and restores the previous path afterwards however `fn`
 * ends. With `pg_catalog` alone, PostgreSQL qualifies every name it deparses.
 */
export async function withSearchPath<T>(
  client: pg.ClientBase,
  path: string,
  fn: () => Promise<T>,
): Promise<T> {
  const { rows } = await client.query<{ path: string }>(
    `SELECT current_setting('search_path') AS path, set_config('search_path', $1, false)`,
    [path],
  );
  try {
    return await fn();
  } finally {
    await client
      .query(`SELECT set_config('search_path', $1, false)`, [rows[0].path])
      .catch(() => undefined);
  }
}
