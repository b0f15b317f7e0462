import {
  Inject,
  Injectable,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { ModuleRef, Reflector } from '@nestjs/core';
import { Observable } from 'rxjs';
import { TENANCY_OPTIONS } from './database.internal-constants.js';
import { NO_TENANT_KEY } from './no-tenant.decorator.js';
import type { ResolvedTenancyOptions } from '../tenancy/tenancy-options.js';
import { TenantContext, type TenantScope } from '../tenancy/routing/tenant-context.js';
import { presentedFor } from '../observability/http-errors.js';
import { admitGraphqlRootField } from './graphql-operation-tenants.js';
import { authorizeTenant } from './tenant-access.js';
import { TenantRegistry, type TenantEntry } from '../tenancy/registry/tenant-registry.js';
import { describeResolver, type TenantResolver } from '../tenancy/routing/tenant-resolvers.js';
import { TenantNotFoundError, TenantRequiredError } from '../tenancy/tenant.errors.js';

/**
 * Resolves each request's tenant and runs the rest of the request in its context, so
 * `@InjectTenantDb()` reaches that tenant's pre-built `SchemaDb`. Registered globally when
 * `tenancy` is configured. Resolution is a resolver call, a pattern test and a Map lookup.
 *
 * Interceptors run after guards: guards and middleware do not see the tenant. Mount
 * `TenantMiddleware` as well when they need it; the interceptor then reuses its context.
 *
 * Answers: malformed id 400, missing id 400 (unless `@NoTenant()` or `required: false`),
 * refused by `tenancy.authorize` 403 (checked before the tenant is looked up), unknown tenant
 * 404, suspended tenant 403. A GraphQL resolver gets the typed error with `extensions`
 * (`code`, `status`, `error`) instead of an HTTP exception, and its root field's tenant is
 * recorded for the field resolvers below it (`nestjs-pg-tenancy/graphql`).
 */
@Injectable()
export class TenantInterceptor implements NestInterceptor {
  /** `@NoTenant()` per controller class and handler: route metadata is fixed once routes are. */
  readonly #noTenant = new WeakMap<object, WeakMap<object, boolean>>();

  constructor(
    /** The tenants requests are checked against. */
    protected readonly registry: TenantRegistry,
    /** Where the request's tenant is kept for the rest of the request. */
    protected readonly context: TenantContext,
    private readonly reflector: Reflector,
    @Inject(TENANCY_OPTIONS) private readonly options: ResolvedTenancyOptions,
    private readonly moduleRef: ModuleRef,
  ) {}

  intercept(
    ctx: ExecutionContext,
    next: CallHandler,
  ): Observable<unknown> | Promise<Observable<unknown>> {
    const current = this.context.current;
    if (this.#runsWithoutTenant(ctx)) {
      // TenantMiddleware runs before routing and cannot see the marker: the handler runs without
      // the tenant it resolved, as the route says.
      if (!current) return next.handle();
      return new Observable((subscriber) =>
        this.context.runWithout(() => next.handle().subscribe(subscriber)),
      );
    }
    if (current) return serve(this.registry, ctx, current.tenantId, next);
    let id: ReturnType<TenantResolver>;
    try {
      id = this.options.resolver(ctx);
      // Every request's path, with no promise at all: a resolver that answers at once, no
      // authorize hook, and a view of the registry that answers now.
      if (!isThenable(id) && !this.options.authorize) {
        const scope = this.#admitNow(id);
        if (scope === null) return next.handle();
        if (scope !== undefined)
          return serve(this.registry, ctx, scope.tenantId, next, this.context, scope);
      }
    } catch (err) {
      throw presentedFor(ctx.getType(), err);
    }
    return this.#admit(ctx, id).then((scope) =>
      scope ? serve(this.registry, ctx, scope.tenantId, next, this.context, scope) : next.handle(),
    );
  }

  /** The tenant scope of the request, or `undefined` when it names none and none is required. */
  async resolve(ctx: ExecutionContext): Promise<TenantScope | undefined> {
    let id: ReturnType<TenantResolver>;
    try {
      id = this.options.resolver(ctx);
    } catch (err) {
      throw presentedFor(ctx.getType(), err);
    }
    return this.#admit(ctx, id);
  }

  /** `resolve`, given what the resolver returned. */
  async #admit(
    ctx: ExecutionContext,
    resolved: ReturnType<TenantResolver>,
  ): Promise<TenantScope | undefined> {
    try {
      const id = await resolved;
      if (isMissing(id)) return this.#noId();
      if (this.options.authorize) await authorizeTenant(this.options, id, ctx, this.moduleRef);
      const entry = await this.registry.require(id);
      return scopeOf(entry);
    } catch (err) {
      throw presentedFor(ctx.getType(), err);
    }
  }

  /**
   * The scope of tenant `id` when the registry's view answers now, `null` for a request that
   * names no tenant where none is required, `undefined` when the table must be asked.
   * @throws what `resolve` rejects with, untranslated
   */
  #admitNow(id: string | undefined | null): TenantScope | null | undefined {
    if (isMissing(id)) return this.#noId() ?? null;
    const entry = this.registry.requireNow(id);
    return entry && scopeOf(entry);
  }

  #noId(): undefined {
    if (this.options.required)
      throw new TenantRequiredError(describeResolver(this.options.resolver));
    return undefined;
  }

  /** Whether the route is marked `@NoTenant()`, read from its metadata once per handler. */
  #runsWithoutTenant(ctx: ExecutionContext): boolean {
    const cls = ctx.getClass() as unknown;
    const handler = ctx.getHandler() as unknown;
    if (typeof cls !== 'function' || typeof handler !== 'function') return this.#marked(ctx);
    let byHandler = this.#noTenant.get(cls);
    if (byHandler === undefined) this.#noTenant.set(cls, (byHandler = new WeakMap()));
    let marked = byHandler.get(handler);
    if (marked === undefined) byHandler.set(handler, (marked = this.#marked(ctx)));
    return marked;
  }

  #marked(ctx: ExecutionContext): boolean {
    const targets = [ctx.getHandler(), ctx.getClass()];
    return Boolean(this.reflector.getAllAndOverride<boolean>(NO_TENANT_KEY, targets));
  }
}

/**
 * With `tenancy.interceptor: false` (tenants resolved by `TenantMiddleware`), registered globally
 * in its place to do for HTTP requests what the middleware cannot, as the interceptor would: run
 * `@NoTenant()` routes without a tenant, answer 400 for a route that needs a tenant when the
 * request names none (not a 500 from `@InjectTenantDb()`), resolve the tenant of a resolver that
 * reads route params (parsed only after the middleware), and answer 404, not 500, for a request
 * whose tenant was dropped while it ran. Other contexts (RPC, WebSockets) are left alone but for
 * that last translation.
 * @internal
 */
@Injectable()
export class MiddlewareTenantInterceptor extends TenantInterceptor {
  override intercept(
    ctx: ExecutionContext,
    next: CallHandler,
  ): Observable<unknown> | Promise<Observable<unknown>> {
    if (ctx.getType() === 'http') return super.intercept(ctx, next);
    const current = this.context.current;
    if (!current) return next.handle();
    return serve(this.registry, ctx, current.tenantId, next);
  }
}

/** The request's tenant scope for an admitted registry entry. */
function scopeOf(entry: TenantEntry): TenantScope {
  return { tenantId: entry.info.id, db: entry.db };
}

function isMissing(id: string | undefined | null): id is undefined | null | '' {
  return id === undefined || id === null || id === '';
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}

/**
 * Runs the rest of the request, in `scope` when given. A request that raced its tenant's drop
 * (the schema vanished under it) is a 404, not a 500. One Observable, no operators: this is
 * every tenant request's path.
 */
function serve(
  registry: TenantRegistry,
  ctx: ExecutionContext,
  tenantId: string,
  next: CallHandler,
  context?: TenantContext,
  scope?: TenantScope,
): Observable<unknown> {
  return new Observable((subscriber) => {
    const run = () =>
      next.handle().subscribe({
        next: (value) => subscriber.next(value),
        error: (err: unknown) => {
          registry.vanishedTenantError(tenantId, err).then(
            (translated) =>
              subscriber.error(
                // A tenant gone under the work (its statement cut, or its manager retired by
                // the drop) answers as a tenant unknown from the start.
                translated !== err || translated instanceof TenantNotFoundError
                  ? presentedFor(ctx.getType(), translated)
                  : translated,
              ),
            () => subscriber.error(err),
          );
        },
        complete: () => subscriber.complete(),
      });
    if (!context || !scope) return run();
    // The field resolvers of a GraphQL root field run later, outside this context.
    if (ctx.getType<string>() === 'graphql') admitGraphqlRootField(ctx.getArgs(), context, scope);
    return context.run(scope, run);
  });
}
