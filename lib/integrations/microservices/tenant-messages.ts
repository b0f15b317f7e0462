import {
  Logger,
  type INestApplication,
  type INestMicroservice,
  type NestHybridApplicationOptions,
  type PreRequestHook,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import {
  NatsContext,
  RedisContext,
  RpcException,
  TcpContext,
  type NestMicroservice,
} from '@nestjs/microservices';
import { PATTERN_HANDLER_METADATA } from '@nestjs/microservices/constants.js';
import { PatternHandler } from '@nestjs/microservices/enums/pattern-handler.enum.js';
import { Observable, type Subscription } from 'rxjs';
import { InvalidOptionsError } from '../../shared/errors.js';
import { NO_TENANT_KEY } from '../../module/no-tenant.decorator.js';
import { TenantAdmission } from '../../module/tenant-admission.js';
import { isRefusal, refusalOf, TENANT_MESSAGE_HEADER } from './tenant-message.wire.js';

/** Options of {@link registerTenantMessages} and {@link connectTenantMicroservice}. */
export interface TenantMessagesOptions {
  /**
   * Name of the message header (NATS) or metadata entry (TCP, Redis) that carries the tenant;
   * the `TenantClient`s that send to this service must use the same. Default: `'x-tenant-id'`.
   */
  readonly header?: string;
}

/**
 * Runs every `@MessagePattern()` and `@EventPattern()` handler of `microservice` in the tenant
 * its message names in its headers (NATS) or metadata (TCP, Redis), never in its payload. Each
 * message goes through `TenantAdmission.admit` (tenant named, id pattern, `tenancy.authorize`
 * with the handler's RPC `ExecutionContext`, unknown, suspended) before guards run, and its
 * handler runs in `TenantAdmission.run`, so guards, interceptors, pipes and the handler see the
 * tenant, and a graceful shutdown waits for it. Handlers marked `@NoTenant()` run without one.
 *
 * A message that cannot be served fails closed: a request is answered with a typed refusal
 * (`TenantMessageRefusedError` at a `TenantClient`), an event is logged and dropped.
 *
 * Call it before the microservice starts (`listen()`, `init()`). For a hybrid app use
 * {@link connectTenantMicroservice}.
 *
 * @example
 * const app = await NestFactory.createMicroservice(AppModule, { transport: Transport.NATS });
 * registerTenantMessages(app);
 * await app.listen();
 */
export function registerTenantMessages(
  microservice: INestMicroservice,
  options: TenantMessagesOptions = {},
): INestMicroservice {
  // Nest reads the hooks when it registers the handlers: a hook added later is never called.
  if ((microservice as unknown as { isInitialized?: boolean }).isInitialized) {
    throw new InvalidOptionsError(
      'registerTenantMessages() must run before the microservice starts (before listen() or ' +
        'init()); for a hybrid app, connect it with connectTenantMicroservice(app, options).',
    );
  }
  const admission = microservice.get(TenantAdmission, { strict: false });
  microservice.registerPreRequestHook(tenantMessageHook(admission, options));
  return microservice;
}

/**
 * `app.connectMicroservice(microserviceOptions, hybridOptions)` for a hybrid app, with
 * {@link registerTenantMessages} applied to the microservice before its handlers are registered.
 *
 * @example
 * connectTenantMicroservice(app, { transport: Transport.TCP, options: { port: 4000 } });
 * await app.startAllMicroservices();
 */
export function connectTenantMicroservice<T extends object>(
  app: INestApplication,
  microserviceOptions: T,
  hybridOptions: NestHybridApplicationOptions = {},
  options: TenantMessagesOptions = {},
): INestMicroservice {
  const microservice = app.connectMicroservice<T>(microserviceOptions, {
    ...hybridOptions,
    deferInitialization: true,
  }) as NestMicroservice;
  registerTenantMessages(microservice, options);
  if (!hybridOptions.deferInitialization) {
    // What connectMicroservice does when it does not defer, now that the hook is in place: the
    // shared container's lifecycle hooks stay the application's to call, once.
    microservice.registerListeners();
    microservice.setIsInitialized(true);
    microservice.setIsInitHookCalled(true);
  }
  return microservice;
}

const logger = new Logger('TenantMessages');
const reflector = new Reflector();

/** The pre-request hook of {@link registerTenantMessages}. */
function tenantMessageHook(
  admission: TenantAdmission,
  options: TenantMessagesOptions,
): PreRequestHook {
  const header = options.header ?? TENANT_MESSAGE_HEADER;
  return (ctx, next) => {
    const handler = ctx.getHandler();
    const noTenant = reflector.getAllAndOverride<boolean>(NO_TENANT_KEY, [handler, ctx.getClass()]);
    if (ctx.getType() !== 'rpc' || noTenant) return next();
    const isEvent = Reflect.getMetadata(PATTERN_HANDLER_METADATA, handler) === PatternHandler.EVENT;
    const rpc: unknown = ctx.switchToRpc().getContext();
    const pattern = patternOf(rpc);
    const kind = isEvent ? 'event' : 'message';
    const name =
      pattern === undefined
        ? `${kind} of a transport that carries no tenant (TCP, Redis and NATS do)`
        : `${kind} ${JSON.stringify(pattern)}`;
    return new Observable((subscriber) => {
      let inner: Subscription | undefined;
      let done: (() => void) | undefined;
      let admitting = true;
      const refuse = (err: unknown) => {
        if (!isRefusal(err, admitting)) return subscriber.error(err);
        if (!isEvent) return subscriber.error(new RpcException(refusalOf(err)));
        logger.warn(`Dropped ${name}: ${err.message}`);
        subscriber.complete();
      };
      admission
        .admit(tenantOf(rpc, header), { source: hint(name, header), context: ctx })
        .then((scope) =>
          admission.run(scope, () => {
            admitting = false;
            return new Promise<void>((resolve, reject) => {
              if (subscriber.closed) return resolve();
              done = resolve;
              inner = next().subscribe({
                next: (value) => subscriber.next(value),
                error: reject,
                complete: resolve,
              });
            });
          }),
        )
        .then(() => subscriber.complete(), refuse);
      return () => {
        inner?.unsubscribe();
        done?.(); // an abandoned handler leaves the drain's count too
      };
    });
  };
}

/** The tenant a message names in its headers (NATS) or packet metadata (TCP, Redis). */
function tenantOf(rpc: unknown, header: string): unknown {
  if (rpc instanceof NatsContext) {
    const headers = rpc.getHeaders() as { get?: (name: string) => string } | undefined;
    return typeof headers?.get === 'function' ? headers.get(header) || undefined : undefined;
  }
  if (rpc instanceof TcpContext || rpc instanceof RedisContext) {
    // The metadata is JSON the sender wrote: read only a key of its own of a plain object.
    const metadata: unknown = rpc.getMetadata();
    if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) return;
    return Object.hasOwn(metadata, header)
      ? (metadata as Record<string, unknown>)[header]
      : undefined;
  }
  return undefined;
}

function patternOf(rpc: unknown): string | undefined {
  if (rpc instanceof NatsContext) return rpc.getSubject();
  if (rpc instanceof TcpContext) return rpc.getPattern();
  if (rpc instanceof RedisContext) return rpc.getChannel();
  return undefined;
}

/** The hint of the TenantRequiredError a message that names no tenant gets. */
function hint(name: string, header: string): string {
  return (
    `${name} carries no "${header}" header (send it with a TenantClient, from inside a ` +
    "tenant's work; a handler that needs no tenant is marked @NoTenant())"
  );
}
