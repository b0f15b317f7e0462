// The current tenant in logs and traces: a Nest console logger that adds it to every line, and
// an OpenTelemetry span processor that puts it on every span. Neither imports @opentelemetry/*
// or anything that needs a tenant: the tenant comes from whatever tells it (TenantAdmission).
import { ConsoleLogger, type ConsoleLoggerOptions, type LogLevel } from '@nestjs/common';

/** What tells the tenant of the work in progress: `TenantAdmission` is one. */
export interface CurrentTenantSource {
  /** The current tenant's id, or `undefined` outside a tenant context. */
  currentTenantId(): string | undefined;
}

/** The span attribute and log field names the tenant id is given. */
export const TENANT_ID_ATTRIBUTE = 'tenant.id';

/**
 * Nest's `ConsoleLogger`, with the current tenant's id as the structured field `tenantId` of every
 * line logged inside a tenant context (the library's lines and the application's): in JSON mode
 * a key of the record (under `params`, or at the top with `flattenParams`), in text mode the
 * `{ tenantId: 'acme' }` after the message. Outside a tenant context lines are unchanged.
 *
 * @example
 * ```ts
 * const app = await NestFactory.create(AppModule, { bufferLogs: true });
 * app.useLogger(new TenantConsoleLogger(app.get(TenantAdmission), { json: true, flattenParams: true }));
 * ```
 */
export class TenantConsoleLogger extends ConsoleLogger {
  readonly #tenants: CurrentTenantSource;

  /** `tenants`: usually `app.get(TenantAdmission)`. `options`: as `ConsoleLogger`'s. */
  constructor(tenants: CurrentTenantSource, options: ConsoleLoggerOptions = {}) {
    super(options);
    this.#tenants = tenants;
  }

  /** Adds `tenantId` to the line's structured fields when a tenant is current. */
  protected override printMessages(
    messages: unknown[],
    context?: string,
    logLevel?: LogLevel,
    writeStreamType?: 'stdout' | 'stderr',
    errorStack?: unknown,
    params?: Record<string, unknown>,
  ): void {
    const tenantId = this.#tenants.currentTenantId();
    super.printMessages(
      messages,
      context,
      logLevel,
      writeStreamType,
      errorStack,
      tenantId === undefined ? params : { tenantId, ...params },
    );
  }
}

/** The part of an OpenTelemetry span the processor writes. */
export interface AttributeSink {
  /** Sets one attribute. */
  setAttribute(key: string, value: string): unknown;
}

/**
 * An OpenTelemetry span processor (the SDK's `SpanProcessor` shape) that sets the attribute
 * `tenant.id` on every span started inside a tenant context: the spans of the `pg`
 * instrumentation, of outgoing HTTP calls, of your own `startActiveSpan`. The SDK is set up
 * before the application exists, so create the processor first and give it the tenant's
 * source once the application is built ({@link use}); until then it sets nothing.
 *
 * @example
 * ```ts
 * const tenantSpans = new TenantSpanProcessor();
 * new NodeSDK({ spanProcessors: [tenantSpans, new BatchSpanProcessor(exporter)] }).start();
 * // …
 * tenantSpans.use(app.get(TenantAdmission));
 * ```
 */
export class TenantSpanProcessor {
  #tenants: CurrentTenantSource | undefined;

  /** `tenants`: the tenant's source, if the application exists already. */
  constructor(tenants?: CurrentTenantSource) {
    this.#tenants = tenants;
  }

  /** Reads the current tenant from `tenants` (usually `app.get(TenantAdmission)`) from now on. */
  use(tenants: CurrentTenantSource): this {
    this.#tenants = tenants;
    return this;
  }

  /** Sets `tenant.id` on a span started in a tenant context. */
  onStart(span: AttributeSink, _parentContext?: unknown): void {
    const tenantId = this.#tenants?.currentTenantId();
    if (tenantId !== undefined) span.setAttribute(TENANT_ID_ATTRIBUTE, tenantId);
  }

  /** Nothing to do when a span ends. */
  onEnd(_span?: unknown): void {}

  /** Nothing buffered. */
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  /** Nothing to release. */
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
