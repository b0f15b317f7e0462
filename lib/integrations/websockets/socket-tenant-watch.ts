import type { TenantError } from '../../tenancy/tenant.errors.js';

/** How often, per `tenancy.maxStalenessMs`, the open sockets' tenants are checked. */
export const CHECKS_PER_STALENESS = 4;

/** What the watch needs of a socket: an identity in a set. */
type Watched = object;

/**
 * The open sockets by tenant, and a timer that, every `maxStalenessMs / CHECKS_PER_STALENESS`,
 * asks once per tenant with open sockets whether it may still be served (one check per tenant,
 * however many sockets it has) and closes every socket of a tenant that may not. The timer runs
 * only while sockets are open, never holds the process open, and stops at `stop()`.
 */
export class SocketTenantWatch<S extends Watched> {
  readonly #open = new Map<string, Set<S>>();
  #timer: NodeJS.Timeout | undefined;
  #checking = false;

  constructor(
    private readonly periodMs: number,
    /** `TenantAdmission.check`: `null` while the tenant may be served. */
    private readonly check: (tenantId: string) => Promise<TenantError | null>,
    /** Closes one socket of a tenant that may no longer be served. */
    private readonly close: (socket: S, reason: TenantError) => void,
    /** Told when a check itself fails (the database unreachable): the sockets stay open. */
    private readonly onCheckFailed: (tenantId: string, err: unknown) => void,
  ) {}

  /** Starts watching `socket` of tenant `tenantId` until {@link remove}. */
  add(tenantId: string, socket: S): void {
    let sockets = this.#open.get(tenantId);
    if (!sockets) this.#open.set(tenantId, (sockets = new Set()));
    sockets.add(socket);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => void this.tick(), this.periodMs);
      this.#timer.unref();
    }
  }

  /** Stops watching `socket` (it disconnected). */
  remove(tenantId: string, socket: S): void {
    const sockets = this.#open.get(tenantId);
    if (!sockets?.delete(socket) || sockets.size > 0) return;
    this.#open.delete(tenantId);
    if (this.#open.size === 0) this.#stopTimer();
  }

  /** How many sockets are watched, per tenant. */
  counts(): Map<string, number> {
    return new Map([...this.#open].map(([id, sockets]) => [id, sockets.size]));
  }

  /** Stops the timer and forgets every socket (at shutdown). */
  stop(): void {
    this.#stopTimer();
    this.#open.clear();
  }

  /**
   * One round: a check per tenant with open sockets, and the sockets of each tenant that may no
   * longer be served closed. A round still waiting on the database is not overlapped.
   */
  async tick(): Promise<void> {
    if (this.#checking) return;
    this.#checking = true;
    try {
      await Promise.all([...this.#open.keys()].map((id) => this.#checkTenant(id)));
    } finally {
      this.#checking = false;
    }
  }

  async #checkTenant(tenantId: string): Promise<void> {
    let refusal: TenantError | null;
    try {
      refusal = await this.check(tenantId);
    } catch (err) {
      this.onCheckFailed(tenantId, err);
      return;
    }
    if (refusal === null) return;
    for (const socket of [...(this.#open.get(tenantId) ?? [])]) this.close(socket, refusal);
  }

  #stopTimer(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
