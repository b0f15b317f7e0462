import { AsyncLocalStorage } from 'node:async_hooks';
import pg from 'pg';
import { DatabaseShuttingDownError } from '../shared/errors.js';

/** What a drain did, for the shutdown log line. */
export interface DrainReport {
  /** Admitted requests and jobs in flight when the drain began. */
  readonly requests: number;
  /** Connections checked out when the drain began. */
  readonly connections: number;
  /** Connections that were returned without being cancelled. */
  readonly drained: number;
  /** Connections whose queries were cancelled (and sessions ended) at the timeout. */
  readonly cancelled: number;
  /** How long the drain took, cancellation included. */
  readonly durationMs: number;
}

/** The parts of pg's Client (untyped in @types/pg) a cancel request needs. */
interface CancellingClient {
  readonly host: string;
  readonly port: number;
  on(event: 'error', listener: () => void): void;
  readonly connection: {
    on(event: 'connect' | 'error', listener: () => void): void;
    connect(portOrPath: number | string, host?: string): void;
    cancel(processID: number, secretKey: number): void;
  };
}

interface TrackedLease {
  readonly client: pg.PoolClient;
  release(err?: Error): void;
}

/**
 * Graceful shutdown. Once `drain()` begins, new work is refused with `DatabaseShuttingDownError`
 * while work already admitted (requests in flight, their queries and open transactions) goes on;
 * whatever is still running at the timeout is cancelled on the server.
 *
 * "Admitted" is carried by `AsyncLocalStorage`: a request entered through `enter()`/`run()`
 * before the drain may still check out connections during it, anything else may not.
 *
 * Advanced: `DatabaseModule` creates it and starts the drain at shutdown. It may be injected (to
 * read `draining`, or to admit non-HTTP work with `admit()`), but it is not part of the stable API
 * and may change in a minor release.
 */
export class DrainController {
  readonly #connection: pg.ClientConfig;
  readonly #admitted = new AsyncLocalStorage<true>();
  readonly #leases = new Set<TrackedLease>();
  #requests = 0;
  #draining = false;
  #releasedWhileDraining = 0;
  #idleWaiters: Array<() => void> = [];
  readonly #drainListeners: Array<() => void | Promise<void>> = [];

  readonly #scope: (<T>(fn: () => T) => T) | undefined;

  /**
   * @param connection settings (with the password) for the connections that send cancel requests.
   * @param scope wraps each admitted unit of work (the replicas' read-your-writes context).
   */
  constructor(connection: pg.ClientConfig, scope?: <T>(fn: () => T) => T) {
    this.#connection = connection;
    this.#scope = scope;
  }

  /** `true` once shutdown has begun. */
  get draining(): boolean {
    return this.#draining;
  }

  /** Requests admitted and not finished, and connections checked out. */
  get busy(): {
    /** Admitted requests and jobs not finished. */
    requests: number;
    /** Connections checked out of the pool. */
    connections: number;
  } {
    return { requests: this.#requests, connections: this.#leases.size };
  }

  /**
   * Admits one unit of work (a request): refuses it when draining, otherwise counts it until the
   * returned `leave` is called. Run the work inside {@link runAdmitted}.
   *
   * @throws DatabaseShuttingDownError
   */
  enter(): () => void {
    if (this.#draining) throw new DatabaseShuttingDownError();
    return this.#count();
  }

  /** Counts one unit of work until the returned `leave` is called. */
  #count(): () => void {
    this.#requests++;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.#requests--;
      this.#notifyIfIdle();
    };
  }

  /** Runs `fn` as admitted work: its connection checkouts are allowed while draining. */
  runAdmitted<T>(fn: () => T): T {
    const scope = this.#scope;
    return this.#admitted.run(true, scope ? () => scope(fn) : fn);
  }

  /**
   * Admits a job for its whole duration (enter, run, leave). A job started inside admitted work
   * (a `tenants.run()` in a request or in another run) is part of it: it is counted, and not
   * refused once shutdown has begun, since the work it belongs to is let finish.
   * @throws DatabaseShuttingDownError
   */
  async admit<T>(fn: () => Promise<T>): Promise<T> {
    const leave = this.#admitted.getStore() ? this.#count() : this.enter();
    try {
      return await this.runAdmitted(fn);
    } finally {
      leave();
    }
  }

  /** Called before a checkout. @throws DatabaseShuttingDownError for work that was not admitted. */
  assertCanCheckout(): void {
    if (this.#draining && !this.#admitted.getStore()) throw new DatabaseShuttingDownError();
  }

  /**
   * Counts a checked-out connection until `untrack`. Called by the library's checkout path.
   * @internal
   */
  track(lease: TrackedLease): void {
    this.#leases.add(lease);
  }

  /**
   * Calls `listener` once when the drain begins (connections kept idle close then); the drain
   * waits for what it returns.
   * @internal
   */
  onDrain(listener: () => void | Promise<void>): void {
    if (this.#draining) void Promise.resolve(listener()).catch(() => undefined);
    else this.#drainListeners.push(listener);
  }

  /**
   * Stops counting a connection returned to the pool.
   * @internal
   */
  untrack(lease: TrackedLease): void {
    if (!this.#leases.delete(lease)) return;
    if (this.#draining) this.#releasedWhileDraining++;
    this.#notifyIfIdle();
  }

  /**
   * Refuses new work, waits up to `timeoutMs` for admitted work to finish, then cancels the
   * queries still running and, after `graceMs`, closes the connections still checked out, so
   * open transactions roll back and nothing holds the pool open.
   */
  async drain(timeoutMs: number, graceMs = 1_000): Promise<DrainReport> {
    const started = performance.now();
    this.#draining = true;
    const requests = this.#requests;
    const connections = this.#leases.size;
    this.#releasedWhileDraining = 0;
    const listeners = this.#drainListeners.splice(0);
    await Promise.all(listeners.map((l) => Promise.resolve(l()).catch(() => undefined)));
    let cancelled = 0;
    let drained: number;
    if (await this.#waitIdle(timeoutMs)) {
      drained = this.#releasedWhileDraining;
    } else {
      drained = this.#releasedWhileDraining;
      cancelled = this.#leases.size;
      this.#cancelRunningQueries();
      if (!(await this.#waitIdle(graceMs))) {
        // Still checked out (an idle open transaction, or a cancel that did not land): close
        // those connections; the server rolls their transactions back.
        for (const lease of [...this.#leases]) lease.release(new DatabaseShuttingDownError());
      }
    }
    return {
      requests,
      connections,
      drained,
      cancelled,
      durationMs: Math.round(performance.now() - started),
    };
  }

  /**
   * Sends a protocol-level cancel request (process id and secret key) for each running query,
   * as psql's Ctrl-C does. Unlike `pg_cancel_backend(pid)` this also works through PgBouncer,
   * which forwards the request to the right server connection.
   */
  #cancelRunningQueries(): void {
    for (const lease of this.#leases) {
      const target = lease.client as unknown as { processID: number; secretKey: number };
      // What pg's Client#cancel does, without its deprecated `activeQuery` check: open a
      // connection with the same settings (TLS included) and send CancelRequest. An idle
      // session ignores it, so every checked-out connection gets one.
      const canceller = new pg.Client(this.#connection) as unknown as CancellingClient;
      canceller.on('error', () => undefined);
      const { connection, host, port } = canceller;
      connection.on('error', () => undefined);
      connection.on('connect', () => connection.cancel(target.processID, target.secretKey));
      if (host?.startsWith('/')) connection.connect(`${host}/.s.PGSQL.${port}`);
      else connection.connect(port, host);
    }
  }

  #isIdle(): boolean {
    return this.#requests === 0 && this.#leases.size === 0;
  }

  #notifyIfIdle(): void {
    if (!this.#isIdle()) return;
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  /** Resolves `true` when idle, `false` after `ms`. */
  #waitIdle(ms: number): Promise<boolean> {
    if (this.#isIdle()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#idleWaiters = this.#idleWaiters.filter((w) => w !== onIdle);
        resolve(false);
      }, ms);
      const onIdle = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.#idleWaiters.push(onIdle);
    });
  }
}
