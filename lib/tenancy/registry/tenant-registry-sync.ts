import type { LoggerService } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { quoteIdentifier } from '../../shared/identifiers.js';
import { answersWithin, openSession, type Session } from '../../connection/sessions.js';
import { parseNotice, type RegistryNotice } from './registry-notice.js';

/** How an instance keeps up with the registry table, for health checks and metrics. */
export interface RegistrySyncState {
  /**
   * `listening`: change notifications arrive; `polling`: they cannot (a transaction-mode pooler)
   * and the table is re-read every `pollIntervalMs`; `reconnecting`: the listener is lost;
   * `stopped`: not started or closed.
   */
  readonly mode: 'listening' | 'polling' | 'reconnecting' | 'stopped';
  /** The view is known complete as of at most `maxStalenessMs` ago. */
  readonly synced: boolean;
  /** How old the last proof of completeness is (heartbeat heard, or poll), ms; `null`: none yet. */
  readonly lagMs: number | null;
  /** The configured staleness bound (`tenancy.maxStalenessMs`), in milliseconds. */
  readonly maxStalenessMs: number;
}

/** What the sync drives. */
export interface RegistrySyncTarget {
  /** Applies one announced change (synchronously; re-reads may follow). */
  onNotice(notice: RegistryNotice, at: number): void;
  /**
   * Re-reads the whole table and merges it; resolves with when the read started, which is after
   * this call (a read already running is not reused: it may predate a LISTEN).
   */
  reload(): Promise<number>;
  /**
   * Brings the view level with the table after a gap (compares every id and version, re-reads
   * what differs); resolves with when its read started: every change committed before is applied.
   */
  reconcile(): Promise<number>;
  /** The view's `count:sum` of versions, as the heartbeat reads the table's (see the store). */
  digest(): string;
}

export interface RegistrySyncOptions {
  readonly pool: pg.Pool;
  readonly connection: pg.ClientConfig;
  readonly channel: string;
  /** Sends a heartbeat: `$1` channel, `$2` nonce (`TenantRegistryStore.heartbeatSql`). */
  readonly heartbeatSql: string;
  readonly maxStalenessMs: number;
  readonly pollIntervalMs: number;
  readonly logger: LoggerService;
}

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5_000;
const PROBE_TIMEOUT_MS = 2_000;

/**
 * Keeps the registry view current and proves it. A dedicated LISTEN connection (TCP keepalive
 * on) receives the trigger's notifications. Every quarter of `maxStalenessMs` the instance sends a
 * heartbeat NOTIFY to itself through the pool: notifications arrive in commit order, so hearing a
 * heartbeat sent at time T proves every change committed before T has arrived. The newest such T
 * is `heardAsOf`; the registry trusts its view only while `heardAsOf` is within the bound, and
 * re-checks entries against the table otherwise. A listener that stays silent past the bound (a
 * NAT dropping packets without closing) is cut and reconnected, which re-reads the table.
 *
 * After a gap (a heartbeat lost while later ones arrive, none heard within the bound, or a view
 * whose digest differs from the table's as the heartbeat read it) the view is reconciled with
 * the table, every id and version compared, before it counts as current again.
 *
 * Where notifications cannot arrive at all (LISTEN through a transaction-mode pooler, detected by
 * the first heartbeat), the table is re-read every `pollIntervalMs` and each read counts as heard.
 */
export class RegistrySync {
  readonly #options: RegistrySyncOptions;
  readonly #target: RegistrySyncTarget;
  readonly #heartbeatChannel = `pg_tenancy_hb_${randomBytes(8).toString('hex')}`;
  #heardAsOf = Number.NEGATIVE_INFINITY;
  #mode: RegistrySyncState['mode'] = 'stopped';
  #session: Session | undefined;
  #closed = true;
  #reconnectDelay = RECONNECT_MIN_MS;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #heartbeatTimer: NodeJS.Timeout | undefined;
  #pollTimer: NodeJS.Timeout | undefined;
  #nonce = 0;
  /** Heartbeats not heard yet: when each was sent, and when its NOTIFY committed. */
  readonly #sent = new Map<number, { sentAt: number; committedAt?: number }>();
  #gapAt: number | undefined; // a gap noticed that no read of the table has covered yet
  #reconciling = false;
  /** When the listener's load of the table (after its LISTEN) began. */
  #loadedAt = Number.NEGATIVE_INFINITY;
  #waiters: Array<() => void> = [];
  #warnedHeartbeat = false;
  /** The oldest heartbeat sent (committed) and not heard yet. */
  #unheard: { sentAt: number; committedAt: number } | undefined;

  constructor(options: RegistrySyncOptions, target: RegistrySyncTarget) {
    this.#options = options;
    this.#target = target;
  }

  /** When (performance.now()) the view was last proven complete. */
  get heardAsOf(): number {
    return this.#heardAsOf;
  }

  /** Changes are arriving (listening) or being fetched (polling); `false` while reconnecting. */
  get live(): boolean {
    return this.#mode === 'listening' || this.#mode === 'polling';
  }

  state(): RegistrySyncState {
    const now = performance.now();
    const lag = Number.isFinite(this.#heardAsOf) ? Math.round(now - this.#heardAsOf) : null;
    return {
      mode: this.#mode,
      synced: this.live && lag !== null && lag <= this.#options.maxStalenessMs,
      lagMs: lag,
      maxStalenessMs: this.#options.maxStalenessMs,
    };
  }

  /** Records proof that every change committed before `asOf` has been applied. */
  heard(asOf: number): void {
    if (this.#gapAt !== undefined && asOf >= this.#gapAt) this.#gapAt = undefined;
    if (asOf <= this.#heardAsOf) return;
    this.#heardAsOf = asOf;
    if (this.#unheard && this.#unheard.sentAt <= asOf) this.#unheard = undefined;
    if (this.#mode === 'listening' || this.#mode === 'polling') {
      for (const resolve of this.#waiters.splice(0)) resolve();
    }
  }

  /** Resolves once listening (or polling) and proven current. */
  whenSynced(): Promise<void> {
    if (this.state().synced) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Connects the listener and loads the table; on failure loads anyway and retries. */
  async start(): Promise<void> {
    this.#closed = false;
    this.#mode = 'reconnecting';
    try {
      await this.#connect();
    } catch (err) {
      this.#options.logger.warn(
        `Tenant change listener could not connect (${(err as Error).message}); retrying in the background. Tenants older than maxStalenessMs are re-checked against the table meanwhile.`,
      );
      this.heard(await this.#target.reload());
      this.#scheduleReconnect();
    }
  }

  /** Stops listening, heartbeats and polling. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#mode = 'stopped';
    clearTimeout(this.#reconnectTimer);
    clearInterval(this.#heartbeatTimer);
    clearInterval(this.#pollTimer);
    this.#reconnectTimer = this.#heartbeatTimer = this.#pollTimer = undefined;
    const session = this.#session;
    this.#session = undefined;
    await session?.close();
  }

  /** Cuts the listener (as a network failure would) and reconnects. For tests and operators. */
  resync(reason: string): void {
    this.#lost(this.#session, new Error(reason));
  }

  async #connect(): Promise<void> {
    const { connection, maxStalenessMs } = this.#options;
    const session = await openSession(
      { connectionTimeoutMillis: Math.max(maxStalenessMs, 2_000), ...connection },
      { applicationName: 'nestjs-pg-tenancy:listener', keepAlive: true, closeTimeoutMs: 500 },
    );
    const { client } = session;
    client.on('error', (err: Error) => this.#lost(session, err));
    client.on('end', () => this.#lost(session));
    client.on('notification', (message) => this.#onNotification(message));
    this.#session = session;
    // A connection that goes silent while we set up must not hang start-up.
    let timer: NodeJS.Timeout | undefined;
    let readAt = Number.NEGATIVE_INFINITY;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer within ${Math.max(maxStalenessMs, 2_000)} ms`)),
        Math.max(maxStalenessMs, 2_000),
      );
    });
    try {
      await Promise.race([
        (async () => {
          await client.query(`LISTEN ${quoteIdentifier(this.#options.channel)}`);
          await client.query(`LISTEN ${quoteIdentifier(this.#heartbeatChannel)}`);
          // Listen first, then load: a change committed in between is seen by one or the other.
          readAt = await this.#target.reload();
        })(),
        deadline,
      ]);
    } catch (err) {
      this.#lost(session, err as Error, true);
      throw err;
    } finally {
      clearTimeout(timer);
    }
    if (this.#closed) return void (await this.close());
    // Lost while loading (terminated, cut as silent): the reconnect already scheduled takes over.
    // Going on would claim a listener that does not exist.
    if (this.#session !== session) return;
    this.#loadedAt = readAt;
    this.#mode = 'listening';
    if (!(await this.#probe(session))) {
      if (this.#session !== session) return;
      // The heartbeat never came back. A connection that still answers queries is typically
      // PgBouncer in transaction mode: LISTEN ran on one server connection and notifications go
      // to a session nobody reads. One that does not answer went silent (a network fault right
      // after LISTEN): that is a lost listener, not a pooler, and it is reconnected.
      if (!(await answersWithin(session, PROBE_TIMEOUT_MS))) {
        this.#lost(session, new Error('the listener connection stopped answering'));
        return;
      }
      if (this.#session !== session) return;
      this.#session = undefined;
      await session.close();
      this.#options.logger.warn(
        `Tenant change notifications do not arrive on this connection (a transaction-mode pooler such as PgBouncer?). ` +
          `Falling back to reloading the registry every ${this.#options.pollIntervalMs} ms; set directConnection to a direct PostgreSQL connection for instant propagation.`,
      );
      this.#startPolling();
      return;
    }
    this.#reconnectDelay = RECONNECT_MIN_MS;
    this.#startHeartbeats();
  }

  /** Sends one heartbeat and waits for it (`false` too when `session` is lost meanwhile). */
  async #probe(session: Session): Promise<boolean> {
    const sentAt = await this.#beat();
    if (sentAt === undefined) return false;
    const until = performance.now() + PROBE_TIMEOUT_MS;
    while (this.#heardAsOf < sentAt) {
      if (performance.now() > until || this.#closed || this.#session !== session) return false;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return true;
  }

  /** NOTIFYs the heartbeat channel through the pool; resolves with the send time. */
  async #beat(): Promise<number | undefined> {
    const nonce = ++this.#nonce;
    const sentAt = performance.now();
    const beat: { sentAt: number; committedAt?: number } = { sentAt };
    this.#sent.set(nonce, beat);
    if (this.#sent.size > 64) this.#sent.delete(this.#sent.keys().next().value as number);
    try {
      await this.#options.pool.query(this.#options.heartbeatSql, [
        this.#heartbeatChannel,
        String(nonce),
      ]);
      beat.committedAt = performance.now();
      this.#warnedHeartbeat = false;
      if (this.#heardAsOf < sentAt) this.#unheard ??= { sentAt, committedAt: performance.now() };
      return sentAt;
    } catch (err) {
      this.#sent.delete(nonce);
      if (!this.#warnedHeartbeat) {
        this.#warnedHeartbeat = true;
        this.#options.logger.warn(`Tenant registry heartbeat failed: ${(err as Error).message}`);
      }
      return undefined;
    }
  }

  #onNotification(message: pg.Notification): void {
    const at = performance.now();
    if (message.channel === this.#heartbeatChannel) {
      const [nonce, ...digest] = (message.payload ?? '').split(':');
      this.#onHeartbeat(Number(nonce), digest.join(':'));
      return;
    }
    if (message.channel !== this.#options.channel || !message.payload) return;
    const notice = parseNotice(message.payload);
    if (notice) this.#target.onNotice(notice, at);
  }

  #onHeartbeat(nonce: number, digest: string): void {
    const beat = this.#sent.get(nonce);
    if (!beat || !this.#sent.delete(nonce)) return;
    // Notifications arrive in commit order: a heartbeat committed before this one was sent and
    // still unheard was lost, and changes with it may have been.
    let lost = false;
    for (const [other, earlier] of this.#sent) {
      if ((earlier.committedAt ?? Infinity) > beat.sentAt) continue;
      this.#sent.delete(other);
      lost = true;
    }
    const silentMs = Math.round(performance.now() - Math.max(this.#heardAsOf, this.#loadedAt));
    const gap = lost
      ? 'a heartbeat never arrived while later ones did'
      : this.#gapAt === undefined && silentMs > this.#options.maxStalenessMs
        ? `no heartbeat was heard for ${silentMs} ms`
        : undefined;
    if (gap) {
      this.#options.logger.warn(
        `Tenant change notifications may have been lost (${gap}); reconciling the registry view with the table.`,
      );
    }
    // A notice lost between heartbeats shows as a view unlike the table; an open gap too reconciles.
    if (gap || this.#gapAt !== undefined || digest !== this.#target.digest()) this.#reconcile();
    else this.heard(beat.sentAt);
  }

  /** Reconciles the view while a gap newer than the last read is noted; a failure cuts the listener. */
  #reconcile(): void {
    this.#gapAt = performance.now();
    if (this.#reconciling) return;
    this.#reconciling = true;
    void (async () => {
      try {
        while (this.#gapAt !== undefined && !this.#closed)
          this.heard(await this.#target.reconcile());
      } catch (err) {
        this.resync(`reconciling the registry view failed: ${(err as Error).message}`);
      } finally {
        this.#reconciling = false;
      }
    })();
  }

  #startHeartbeats(): void {
    clearInterval(this.#heartbeatTimer);
    const every = Math.max(25, Math.floor(this.#options.maxStalenessMs / 4));
    this.#heartbeatTimer = setInterval(() => {
      const session = this.#session;
      if (!session || this.#mode !== 'listening') return;
      // Silent: a heartbeat went out (its NOTIFY committed) and has not come back within the
      // bound. A heartbeat that could not even be sent (a starved pool) says nothing about the
      // listener, so it does not count; the view is unsynced meanwhile all the same.
      const unheard = this.#unheard;
      if (unheard && performance.now() - unheard.committedAt > this.#options.maxStalenessMs) {
        this.#lost(
          session,
          new Error(
            `a heartbeat sent ${Math.round(performance.now() - unheard.sentAt)} ms ago never arrived; the connection is silent`,
          ),
        );
        return;
      }
      void this.#beat();
    }, every);
    this.#heartbeatTimer.unref();
  }

  #startPolling(): void {
    if (this.#pollTimer || this.#closed) return;
    this.#mode = 'polling';
    const poll = () =>
      this.#target.reload().then(
        (readAt) => this.heard(readAt),
        (err: Error) => {
          this.#options.logger.warn(`Reloading the tenant registry failed: ${err.message}`);
        },
      );
    void poll();
    this.#pollTimer = setInterval(() => void poll(), this.#options.pollIntervalMs);
    this.#pollTimer.unref();
  }

  #lost(session: Session | undefined, err?: Error, quiet = false): void {
    if (!session || this.#session !== session) return;
    this.#session = undefined;
    clearInterval(this.#heartbeatTimer);
    this.#heartbeatTimer = undefined;
    this.#sent.clear();
    this.#unheard = undefined;
    void session.close();
    if (this.#closed) return;
    this.#mode = 'reconnecting';
    if (!quiet) {
      this.#options.logger.warn(
        `Tenant change listener lost its connection${err ? ` (${err.message})` : ''}; reconnecting. Tenants older than maxStalenessMs are re-checked against the table meanwhile.`,
      );
    }
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#reconnectTimer) return;
    const delay = this.#reconnectDelay;
    this.#reconnectDelay = Math.min(RECONNECT_MAX_MS, delay * 2);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#connect().catch(() => this.#scheduleReconnect());
    }, delay);
    this.#reconnectTimer.unref();
  }
}
