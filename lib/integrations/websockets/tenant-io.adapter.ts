import { HttpException, Logger, type INestApplicationContext } from '@nestjs/common';
import { IoAdapter } from '@nestjs/platform-socket.io';
import { InvalidOptionsError } from '../../shared/errors.js';
import type { ResolvedTenancyOptions } from '../../tenancy/tenancy-options.js';
import { TenantContext, type TenantScope } from '../../tenancy/routing/tenant-context.js';
import {
  TenantNotFoundError,
  TenantSuspendedError,
  type TenantError,
} from '../../tenancy/tenant.errors.js';
import { httpStatusOf, presentedError } from '../../observability/http-errors.js';
import { TENANCY_OPTIONS } from '../../module/database.internal-constants.js';
import { TenantAdmission } from '../../module/tenant-admission.js';
import { HandshakeContext } from './handshake-context.js';
import {
  describeHandshakeResolver,
  type HandshakeTenantResolver,
  type TenantSocket,
} from './handshake-resolvers.js';
import { CHECKS_PER_STALENESS, SocketTenantWatch } from './socket-tenant-watch.js';

/** Options of {@link TenantIoAdapter}. */
export interface TenantSocketOptions {
  /**
   * Finds each connection's tenant in its handshake: `fromHandshakeAuth('tenantId')`,
   * `fromHandshakeHeader('x-tenant-id')`, `fromHandshakeQuery('tenant')` or your own function
   * of the socket. Required: a connection's tenant never comes from its messages.
   */
  readonly resolver: HandshakeTenantResolver;
}

/** What a refused connection's `connect_error` carries in `err.data`. */
export interface TenantRefusalData {
  /** The error's class name: `TenantSuspendedError`, `TenantAccessDeniedError`, … */
  readonly error: string;
  /** The HTTP status a request would have been answered with. */
  readonly status: number;
}

/** A socket.io socket, as far as the adapter uses it. */
interface GatedSocket extends TenantSocket {
  use(fn: (packet: unknown[], next: (err?: Error) => void) => void): unknown;
  once(event: 'disconnect', fn: () => void): unknown;
  emit(event: string, payload: unknown): unknown;
  disconnect(): unknown;
}

/** A socket.io namespace (or server), as far as the adapter uses it. */
interface GatedNamespace {
  use(fn: (socket: GatedSocket, next: (err?: Error) => void) => void): unknown;
  on(event: string, fn: (...args: never[]) => void): unknown;
}

/** What the adapter takes from the application, once its first gateway binds. */
interface Parts {
  readonly admission: TenantAdmission;
  readonly context: TenantContext;
  readonly watch: SocketTenantWatch<GatedSocket>;
}

/**
 * socket.io for tenant apps: every connection's tenant is resolved and admitted at its
 * handshake, every message of the connection is handled in that tenant, and a tenant's sockets
 * are closed when it is suspended or dropped. Use it in place of `IoAdapter` (an app on a Redis
 * adapter extends it instead of `IoAdapter`):
 *
 * - **Handshake.** `resolver` reads the tenant id from the handshake; `TenantAdmission.admit`
 *   checks it as a request's (`tenancy.authorize` called with a {@link HandshakeContext} that
 *   holds the socket). A connection that names no tenant, a malformed, unknown or suspended one,
 *   or one the hook refuses, is refused: the client's `connect_error` has the typed error's
 *   message, and `err.data` its {@link TenantRefusalData}. No gateway code runs for it.
 * - **Messages.** Each message runs in the connection's tenant (`@InjectTenantDb()` reaches it,
 *   and `handleConnection` runs in it too), set before Nest's guards and interceptors, so the
 *   global `TenantInterceptor` serves it in that tenant and never asks `tenancy.resolver`, which
 *   could read a message body the client writes. A message that arrives once the tenant may no
 *   longer be served is not handled: the client gets an `exception` event
 *   (`{ status: 'error', message, error }`) and the socket is closed.
 * - **Suspension and drop.** Every `tenancy.maxStalenessMs / 4`, one `TenantAdmission.check`
 *   per tenant with open sockets; the sockets of a tenant suspended or dropped get the
 *   `exception` event and are disconnected. So they close within `maxStalenessMs` of the change
 *   reaching this instance, which the registry bounds by `maxStalenessMs`.
 *
 * Every namespace served by the adapter requires a tenant.
 *
 * @example
 * const app = await NestFactory.create(AppModule);
 * app.useWebSocketAdapter(new TenantIoAdapter(app, { resolver: fromHandshakeAuth('tenantId') }));
 */
export class TenantIoAdapter extends IoAdapter {
  readonly #app: INestApplicationContext;
  readonly #resolver: HandshakeTenantResolver;
  readonly #gated = new WeakSet<GatedNamespace>();
  readonly #admitted = new WeakMap<GatedSocket, TenantScope>();
  readonly #log = new Logger(TenantIoAdapter.name);
  #parts: Parts | undefined;

  constructor(app: INestApplicationContext, options: TenantSocketOptions) {
    super(app);
    if (typeof options?.resolver !== 'function') {
      throw new InvalidOptionsError(
        'TenantIoAdapter needs a `resolver` that finds the tenant in the handshake, e.g. fromHandshakeAuth("tenantId").',
      );
    }
    this.#app = app;
    this.#resolver = options.resolver;
  }

  /**
   * Gates the gateway's namespace (once per namespace) before Nest binds its handlers.
   * @internal Called by Nest for each gateway.
   */
  override bindClientConnect(server: GatedNamespace, callback: (...args: never[]) => void): void {
    if (!this.#gated.has(server)) {
      this.#gated.add(server);
      const parts = this.#partsOf();
      server.use((socket, next) => void this.#handshake(parts, socket, next));
      // Before Nest's own listener: the socket is gated before any of its messages is bound.
      server.on('connection', (socket: GatedSocket) => this.#adopt(parts, socket));
    }
    super.bindClientConnect(server, callback);
  }

  /** Stops the watch with the socket servers (`app.close()`). */
  override async dispose(): Promise<void> {
    this.#parts?.watch.stop();
    await super.dispose();
  }

  #partsOf(): Parts {
    if (this.#parts) return this.#parts;
    let admission: TenantAdmission, context: TenantContext, options: ResolvedTenancyOptions;
    try {
      admission = this.#app.get(TenantAdmission, { strict: false });
      context = this.#app.get(TenantContext, { strict: false });
      options = this.#app.get<string, ResolvedTenancyOptions>(TENANCY_OPTIONS, { strict: false });
    } catch (err) {
      throw new InvalidOptionsError(
        'TenantIoAdapter serves tenants: import DatabaseModule.forRoot({ tenancy: { … } }) in the application it is given.',
        { cause: err },
      );
    }
    const watch = new SocketTenantWatch<GatedSocket>(
      options.maxStalenessMs / CHECKS_PER_STALENESS,
      (id) => admission.check(id),
      (socket, reason) => this.#close(socket, reason),
      (id, err) =>
        this.#log.warn(`Could not check tenant "${id}" of its open sockets: ${String(err)}`),
    );
    return (this.#parts = { admission, context, watch });
  }

  async #handshake(
    { admission, context }: Parts,
    socket: GatedSocket,
    next: (err?: Error) => void,
  ): Promise<void> {
    let scope: TenantScope;
    try {
      const id = await this.#resolver(socket);
      scope = await admission.admit(id, {
        source: `a connection to namespace "${socket.nsp.name}" must name one: ${describeHandshakeResolver(this.#resolver)}`,
        context: new HandshakeContext(socket, TenantIoAdapter, this.#resolver),
      });
    } catch (err) {
      next(this.#refusal(err));
      return;
    }
    this.#admitted.set(socket, scope);
    // The rest of the handshake, and the gateway's handleConnection, run in the tenant.
    context.run(scope, () => next());
  }

  /** Watches the connected socket and runs each of its messages in its tenant, still served. */
  #adopt({ admission, context, watch }: Parts, socket: GatedSocket): void {
    const handshake = this.#admitted.get(socket);
    // Every connection passes the gate first; one that did not is never served.
    if (handshake === undefined) {
      socket.disconnect();
      return;
    }
    const { tenantId } = handshake;
    watch.add(tenantId, socket);
    socket.once('disconnect', () => watch.remove(tenantId, socket));
    const source = `a message of socket ${socket.id}`;
    socket.use((_packet, next) => {
      admission.admit(tenantId, { source }).then(
        // socket.io dispatches the event on the next tick of this call: Nest's guards,
        // interceptors and the handler all run in the tenant.
        (scope) => context.run(scope, () => next()),
        (err: unknown) => {
          if (err instanceof TenantSuspendedError || err instanceof TenantNotFoundError)
            this.#close(socket, err);
          else this.#refuseMessage(socket, err);
        },
      );
    });
  }

  #close(socket: GatedSocket, reason: TenantError): void {
    socket.emit('exception', { status: 'error', message: reason.message, error: reason.name });
    socket.disconnect();
  }

  /** A message refused for another reason than its tenant's state (the database unreachable). */
  #refuseMessage(socket: GatedSocket, err: unknown): void {
    const { message, error } = this.#presented(err);
    socket.emit('exception', { status: 'error', message, error });
  }

  #refusal(err: unknown): Error {
    const { message, error, status } = this.#presented(err);
    const data: TenantRefusalData = { error, status };
    return Object.assign(new Error(message), { data });
  }

  /** What a client is told about `err`: its own message when it is meant for clients. */
  #presented(err: unknown): { message: string; error: string; status: number } {
    if (err instanceof HttpException) {
      return { message: err.message, error: err.name, status: err.getStatus() };
    }
    const status = httpStatusOf(err);
    if (status !== undefined) {
      const shown = presentedError(err) as Error;
      return { message: shown.message, error: shown.name, status };
    }
    this.#log.error(err);
    return { message: 'Internal server error', error: 'Error', status: 500 };
  }
}
