import { AsyncLocalStorage } from 'node:async_hooks';
import { createRequire } from 'node:module';
import { ClientNats, NatsRecord, type ClientProxy, type ReadPacket } from '@nestjs/microservices';
import { catchError, Observable, throwError } from 'rxjs';
import { TenantAdmission } from '../../module/tenant-admission.js';
import { InvalidOptionsError } from '../../shared/errors.js';
import { MessageWithoutTenantError } from './microservices.errors.js';
import { refusedError, TENANT_MESSAGE_HEADER } from './tenant-message.wire.js';

/** Options of a {@link TenantClient}. */
export interface TenantClientOptions {
  /**
   * Name of the message header (NATS) or metadata entry (TCP, Redis) that carries the tenant;
   * the receiving service's `registerTenantMessages` must use the same. Default: `'x-tenant-id'`.
   */
  readonly header?: string;
}

/** Per-call options of {@link TenantClient.send} and {@link TenantClient.emit}. */
export interface TenantMessageOptions {
  /**
   * Send the message for this tenant rather than the current one (work the application fans out
   * to its tenants from outside any). Default: the tenant of the work in progress.
   */
  readonly tenantId?: string;
  /**
   * Send the message without a tenant, to a handler marked `@NoTenant()`; the receiver refuses
   * it anywhere else. Default: `false`.
   */
  readonly withoutTenant?: boolean;
}

interface Call extends TenantMessageOptions {
  /** A call stamps one packet: a message its observer sends in turn is a call of its own. */
  used: boolean;
}

/**
 * A `ClientProxy` (from `ClientsModule`, `ClientProxyFactory` or `@Client()`) whose messages
 * carry the tenant of the work that sends them: in a NATS message header, or in the Nest
 * packet's `metadata` for TCP and Redis, never in the payload. A message sent outside any
 * tenant's work fails with `MessageWithoutTenantError` unless the call names a tenant or says it
 * needs none. A refusal from the receiver (no tenant, unknown, suspended, …) fails the `send`
 * with a `TenantMessageRefusedError`.
 *
 * The tenant is the one of the code that subscribes to `send` (Nest's clients are lazy) or that
 * calls `emit`. Wrapping the proxy stamps its other users' messages too: a dispatch hook set on
 * it earlier still runs, first.
 *
 * @example
 * { provide: OrdersClient, inject: ['ORDERS', TenantAdmission],
 *   useFactory: (proxy: ClientProxy, admission: TenantAdmission) => new TenantClient(proxy, admission) }
 */
export class TenantClient {
  readonly #calls: AsyncLocalStorage<Call>;

  constructor(
    /** The wrapped client, for what this class does not forward (`connect`, `close`, …). */
    readonly proxy: ClientProxy,
    admission: TenantAdmission,
    options: TenantClientOptions = {},
  ) {
    const header = options.header ?? TENANT_MESSAGE_HEADER;
    const stamped = STAMPED.get(proxy);
    if (stamped) {
      // A second wrapper of the same proxy (two providers, say) shares the first one's stamp: a
      // second hook would stamp, or refuse, every call the first one's options allow.
      if (stamped.header !== header)
        throw new InvalidOptionsError(
          `This ClientProxy already stamps the tenant as "${stamped.header}"; a second TenantClient of it cannot use "${header}".`,
        );
      this.#calls = stamped.calls;
      return;
    }
    const calls = (this.#calls = new AsyncLocalStorage<Call>());
    STAMPED.set(proxy, { header, calls });
    const stamp = proxy instanceof ClientNats ? natsStamp(header) : metadataStamp(header);
    const previous = (proxy as unknown as { onDispatchHook?: (packet: ReadPacket) => void })
      .onDispatchHook;
    proxy.setOnDispatchHook((packet) => {
      previous?.(packet);
      const call = calls.getStore();
      const own = call && !call.used ? call : undefined;
      if (call) call.used = true;
      if (own?.withoutTenant) return;
      const tenantId = own?.tenantId ?? admission.currentTenantId();
      if (!tenantId) throw new MessageWithoutTenantError(describe(packet.pattern));
      stamp(packet, tenantId);
    });
  }

  /** `ClientProxy.send` with the tenant stamped; a refusal is a `TenantMessageRefusedError`. */
  send<TResult = unknown, TInput = unknown>(
    pattern: unknown,
    data: TInput,
    options: TenantMessageOptions = {},
  ): Observable<TResult> {
    return new Observable<TResult>((subscriber) =>
      this.#calls.run({ ...options, used: false }, () =>
        this.proxy
          .send<TResult, TInput>(pattern, data)
          .pipe(catchError((err: unknown) => throwError(() => refusedError(err) ?? err)))
          .subscribe(subscriber),
      ),
    );
  }

  /** `ClientProxy.emit` with the tenant stamped (sent at once, as Nest's `emit` is). */
  emit<TResult = unknown, TInput = unknown>(
    pattern: unknown,
    data: TInput,
    options: TenantMessageOptions = {},
  ): Observable<TResult> {
    return this.#calls.run({ ...options, used: false }, () =>
      this.proxy.emit<TResult, TInput>(pattern, data),
    );
  }
}

type Stamp = (packet: ReadPacket, tenantId: string) => void;

/** The proxies a TenantClient stamps, with how: one hook per proxy, whatever wraps it. */
const STAMPED = new WeakMap<ClientProxy, { header: string; calls: AsyncLocalStorage<Call> }>();

/** TCP, Redis: an entry of the packet's metadata, which both transports carry beside the payload. */
function metadataStamp(header: string): Stamp {
  return (packet, tenantId) => {
    packet.metadata = { ...packet.metadata, [header]: tenantId };
  };
}

/**
 * NATS: a message header. Nest's NATS serializer sends the headers of a `NatsRecord` payload
 * (and its data as the payload): the payload becomes one, with the caller's headers copied.
 */
function natsStamp(header: string): Stamp {
  // Loaded as ClientNats loads it: the package is there, or the proxy could not exist.
  const nats = createRequire(import.meta.url)('@nats-io/transport-node') as {
    headers(): NatsHeaders;
  };
  return (packet, tenantId) => {
    const record = packet.data instanceof NatsRecord ? packet.data : undefined;
    const headers = nats.headers();
    const given = record?.headers as Iterable<[string, string[]]> | undefined;
    for (const [key, values] of given ?? []) for (const value of values) headers.append(key, value);
    headers.set(header, tenantId);
    packet.data = new NatsRecord(record ? record.data : packet.data, headers);
  };
}

interface NatsHeaders {
  append(key: string, value: string): void;
  set(key: string, value: string): void;
}

function describe(pattern: unknown): string {
  try {
    return JSON.stringify(pattern) ?? String(pattern);
  } catch {
    return String(pattern);
  }
}
