import { Inject, Injectable, type NestMiddleware } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host.js';
import { TENANCY_OPTIONS } from './database.internal-constants.js';
import type { ResolvedTenancyOptions } from '../tenancy/tenancy-options.js';
import { TenantContext } from '../tenancy/routing/tenant-context.js';
import { toHttpError } from '../observability/http-errors.js';
import { authorizeTenant } from './tenant-access.js';
import { TenantRegistry } from '../tenancy/registry/tenant-registry.js';

/**
 * The tenant resolved before guards run, for HTTP apps whose guards (or other middleware) need
 * it. Mount it for the routes that need it:
 *
 * ```ts
 * export class AppModule implements NestModule {
 *   configure(consumer: MiddlewareConsumer) {
 *     consumer.apply(TenantMiddleware).forRoutes('*');
 *   }
 * }
 * ```
 *
 * A request without a tenant id passes through untouched (the interceptor then decides, honouring
 * `@NoTenant()`); a malformed, unknown or suspended one, or one `tenancy.authorize` refuses, is
 * refused here. Guards have not run yet: `authorize` and `fromUser` see `request.user` only if
 * authentication is itself a middleware (passport's, for instance) mounted before this one.
 *
 * Route params are not parsed yet at this stage: a resolver that reads `request.params`
 * (`fromPathParam`, or "the path param, else the header") is left to the interceptor, which runs
 * after routing, so such routes' guards do not see the tenant. The middleware cannot see
 * `@NoTenant()` either: it checks an id such a route is sent (exclude the route to skip that),
 * and the route's handler then runs without the tenant.
 */
@Injectable()
export class TenantMiddleware implements NestMiddleware {
  constructor(
    private readonly registry: TenantRegistry,
    private readonly context: TenantContext,
    @Inject(TENANCY_OPTIONS) private readonly options: ResolvedTenancyOptions,
    private readonly moduleRef: ModuleRef,
  ) {}

  /** Resolves the request's tenant and runs the rest of the request in its context. */
  async use(req: unknown, res: unknown, next: (err?: unknown) => void): Promise<void> {
    let id: string | undefined | null;
    let scope;
    try {
      const seen = { params: false };
      const host = new ExecutionContextHost([watchParams(req, seen), res, next]);
      host.setType('http');
      id = await this.options.resolver(host);
      // An answer that read the (not yet parsed) route params is not the route's answer.
      if (seen.params || id === undefined || id === null || id === '') return next();
      // Without a hook, no await: this is every request's path.
      if (this.options.authorize) await authorizeTenant(this.options, id, host, this.moduleRef);
      const entry = await this.registry.require(id);
      scope = { tenantId: entry.info.id, db: entry.db };
    } catch (err) {
      throw toHttpError(err);
    }
    this.context.run(scope, () => next());
  }
}

/**
 * `req` as the resolver sees it, noting in `seen` whether it read `params`. Methods are bound to
 * the request itself, so its own getters and private state work as usual.
 */
function watchParams(req: unknown, seen: { params: boolean }): unknown {
  if (req === null || typeof req !== 'object') return req;
  return new Proxy(req, {
    get(target, property) {
      if (property === 'params') seen.params = true;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
    },
  });
}
