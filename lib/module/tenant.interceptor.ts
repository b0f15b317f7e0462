import {
  Inject,
  Injectable,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { ModuleRef, Reflector } from '@nestjs/core';
import { catchError, from, Observable, switchMap, throwError } from 'rxjs';
import { TENANCY_OPTIONS } from './database.internal-constants.js';
import { NO_TENANT_KEY } from './no-tenant.decorator.js';
import type { ResolvedTenancyOptions } from '../tenancy/tenancy-options.js';
import { TenantContext, type TenantScope } from '../tenancy/routing/tenant-context.js';
import { toHttpError } from '../observability/http-errors.js';
import { authorizeTenant } from './tenant-access.js';
import { TenantRegistry } from '../tenancy/registry/tenant-registry.js';
import { describeResolver } from '../tenancy/routing/tenant-resolvers.js';
import { TenantRequiredError } from '../tenancy/tenant.errors.js';

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
 * 404, suspended tenant 403.
 */
@Injectable()
export class TenantInterceptor implements NestInterceptor {
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
    if (
      this.reflector.getAllAndOverride<boolean>(NO_TENANT_KEY, [ctx.getHandler(), ctx.getClass()])
    ) {
      // TenantMiddleware runs before routing and cannot see the marker: the handler runs without
      // the tenant it resolved, as the route says.
      if (!current) return next.handle();
      return new Observable((subscriber) =>
        this.context.runWithout(() => next.handle().subscribe(subscriber)),
      );
    }
    if (current)
      return translateVanishedTenant(this.registry, ctx, current.tenantId, next.handle());
    return this.resolve(ctx).then((scope) => {
      if (!scope) return next.handle();
      return translateVanishedTenant(
        this.registry,
        ctx,
        scope.tenantId,
        new Observable((subscriber) =>
          this.context.run(scope, () => next.handle().subscribe(subscriber)),
        ),
      );
    });
  }

  /** The tenant scope of the request, or `undefined` when it names none and none is required. */
  async resolve(ctx: ExecutionContext): Promise<TenantScope | undefined> {
    try {
      const id = await this.options.resolver(ctx);
      if (id === undefined || id === null || id === '') {
        if (this.options.required)
          throw new TenantRequiredError(describeResolver(this.options.resolver));
        return undefined;
      }
      // Without a hook, no await: this is every request's path.
      if (this.options.authorize) await authorizeTenant(this.options, id, ctx, this.moduleRef);
      const entry = await this.registry.require(id);
      return { tenantId: entry.info.id, db: entry.db };
    } catch (err) {
      throw ctx.getType() === 'http' ? toHttpError(err) : err;
    }
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
    return translateVanishedTenant(this.registry, ctx, current.tenantId, next.handle());
  }
}

/** A request that raced its tenant's drop (the schema vanished under it) is a 404, not a 500. */
function translateVanishedTenant(
  registry: TenantRegistry,
  ctx: ExecutionContext,
  tenantId: string,
  source: Observable<unknown>,
): Observable<unknown> {
  return source.pipe(
    catchError((err: unknown) =>
      from(registry.vanishedTenantError(tenantId, err)).pipe(
        switchMap((translated) =>
          throwError(() =>
            translated !== err && ctx.getType() === 'http' ? toHttpError(translated) : translated,
          ),
        ),
      ),
    ),
  );
}
