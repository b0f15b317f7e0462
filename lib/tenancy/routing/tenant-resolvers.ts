import type { ExecutionContext } from '@nestjs/common';

/**
 * Finds the tenant id of a request. Return `undefined` when the request names none. Runs for
 * every request, so keep it cheap; it may be async (e.g. reading a verified JWT claim).
 *
 * In the middleware mount (`TenantMiddleware`), `ctx.getHandler()` is not available and route
 * params are not parsed yet: a resolver that reads `request.params` there is left to the
 * interceptor, which calls it again after routing.
 *
 * The built-in resolvers read the HTTP request, also for a GraphQL resolver (from the GraphQL
 * context's `req`); a resolver of your own reads it there with `GqlExecutionContext`.
 *
 * @example (ctx) => ctx.switchToHttp().getRequest().user?.tenantId
 */
export type TenantResolver = (
  ctx: ExecutionContext,
) => string | undefined | null | Promise<string | undefined | null>;

interface HttpRequestLike {
  user?: unknown;
  headers?: Record<string, string | string[] | undefined>;
  params?: Record<string, string | undefined>;
  query?: Record<string, unknown>;
  hostname?: string;
}

/**
 * The HTTP request behind `ctx`. For a GraphQL resolver (`ctx.getType() === 'graphql'`, whose
 * arguments are `root, args, context, info`) that is the GraphQL context's `req`, which the
 * Apollo and Mercurius drivers of `@nestjs/graphql` put there, never the root or parent value.
 * In a microservice's context there is none: `switchToHttp().getRequest()` is the message's
 * payload, which its sender writes, so a payload `{ headers: { 'x-tenant-id': … } }` must not
 * name a tenant (microservices carry the tenant in the message's metadata:
 * `nestjs-pg-tenancy/microservices`).
 */
function request(ctx: ExecutionContext): HttpRequestLike {
  const type = ctx.getType<string>();
  if (type === 'rpc') return {};
  if (type === 'graphql') return graphqlRequest(ctx.getArgs()) ?? {};
  return ctx.switchToHttp().getRequest<HttpRequestLike>() ?? {};
}

function graphqlRequest(args: unknown[]): HttpRequestLike | undefined {
  // A federation reference resolver gets (reference, context, info): no arguments object.
  const context: unknown = args.length === 3 ? args[1] : args[2];
  const req = (context as { req?: unknown } | null | undefined)?.req;
  return req !== null && typeof req === 'object' ? req : undefined;
}

function single(value: unknown): string | undefined {
  if (Array.isArray(value)) return single(value[0]);
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

/** Reads the tenant id from a request header. @example fromHeader('x-tenant-id') */
export function fromHeader(name: string): TenantResolver {
  const header = name.toLowerCase();
  const resolver: TenantResolver = (ctx) => single(request(ctx).headers?.[header]);
  return Object.assign(resolver, { description: `send the "${header}" header` });
}

/**
 * Reads the tenant id from the first label of the host name: `acme.example.com` → `acme`.
 * Host names are case-insensitive, so `Acme.Example.com` is `acme` too. Hosts with fewer than
 * `minLabels` labels (the bare domain, `localhost`) name no tenant. Default `minLabels`: 3.
 */
export function fromSubdomain(minLabels = 3): TenantResolver {
  const resolver: TenantResolver = (ctx) => {
    const req = request(ctx);
    const host = (req.hostname ?? single(req.headers?.host) ?? '').replace(/:\d+$/, '');
    const labels = host.split('.');
    // single(): an empty first label (no host at all, or ".example.com") names no tenant.
    return labels.length >= minLabels ? single(labels[0])?.toLowerCase() : undefined;
  };
  return Object.assign(resolver, { description: 'use the tenant subdomain' });
}

/**
 * Reads the tenant id from the authenticated principal, `request.user`, as your guard or
 * passport sets it (for a JWT strategy, the verified claims): the secure default for apps whose
 * users belong to one tenant per login. `path` is a property or a dotted path
 * (`'org.id'`), or a function of the user. With the interceptor mount, guards have run first, so
 * the user is there; a request without one names no tenant (400, or 401 from your guard).
 *
 * @example fromUser('tenantId')            // request.user.tenantId
 * @example fromUser('claims.tid')          // a nested claim
 * @example fromUser((user: Principal) => user.organisation)
 */
export function fromUser<U = Record<string, unknown>>(
  path: string | ((user: U) => string | undefined | null) = 'tenantId',
): TenantResolver {
  const read =
    typeof path === 'function'
      ? path
      : (user: U) =>
          path
            .split('.')
            .reduce<unknown>(
              (value, key) =>
                value !== null && typeof value === 'object'
                  ? (value as Record<string, unknown>)[key]
                  : undefined,
              user,
            );
  const resolver: TenantResolver = (ctx) => {
    const user = request(ctx).user;
    if (user === undefined || user === null) return undefined;
    const value = read(user as U);
    return typeof value === 'string' && value.length > 0 ? value : undefined;
  };
  return Object.assign(resolver, {
    description:
      typeof path === 'string'
        ? `sign in: the tenant comes from the authenticated user's "${path}"`
        : 'sign in: the tenant comes from the authenticated user',
  });
}

/**
 * Reads the tenant id from a route parameter, e.g. `/t/:tenant/projects`. Resolved after routing
 * (by the interceptor), also where `TenantMiddleware` is mounted.
 */
export function fromPathParam(name: string): TenantResolver {
  const resolver: TenantResolver = (ctx) => single(request(ctx).params?.[name]);
  return Object.assign(resolver, { description: `put the tenant in the ":${name}" path segment` });
}

/** Reads the tenant id from a query-string parameter: `?tenant=acme`. */
export function fromQuery(name: string): TenantResolver {
  const resolver: TenantResolver = (ctx) => single(request(ctx).query?.[name]);
  return Object.assign(resolver, { description: `pass the "${name}" query parameter` });
}

/** The hint given in "tenant required" errors. */
export function describeResolver(resolver: TenantResolver): string {
  return (resolver as { description?: string }).description ?? 'the request must identify a tenant';
}
