import type { TenantContext, TenantScope } from '../tenancy/routing/tenant-context.js';

/** What a GraphQL operation's root field was admitted to. */
interface AdmittedRootField {
  readonly context: TenantContext;
  readonly scope: TenantScope;
}

/** The parts of graphql-js's `info` read here: the response path of the field. */
interface ResolveInfoLike {
  readonly path?: ResponsePathLike;
}

interface ResponsePathLike {
  readonly prev: ResponsePathLike | undefined;
  readonly key: string | number;
}

/**
 * Per GraphQL context value (one per operation, each request its own), the tenant each root field
 * was admitted to, by response key. Keyed by the context object, never by anything a request
 * shares with another (the parsed document, the schema), so no operation sees another's tenant.
 */
const admitted = new WeakMap<object, Map<string | number, AdmittedRootField>>();

/**
 * Records, for the field resolvers below it, the tenant `TenantInterceptor` admitted a GraphQL
 * root field to. `args` are the resolver's (`root, args, context, info`). Field resolvers run
 * after their root field's resolver returned, outside its async context: the integration's
 * `tenantSchema` runs them in the tenant recorded here.
 * @internal
 */
export function admitGraphqlRootField(
  args: readonly unknown[],
  context: TenantContext,
  scope: TenantScope,
): void {
  const [, , gqlContext, info] = args;
  const path = (info as ResolveInfoLike | undefined)?.path;
  if (!isObject(gqlContext) || path === undefined || path.prev !== undefined) return;
  let fields = admitted.get(gqlContext);
  if (fields === undefined)
    admitted.set(gqlContext, (fields = new Map<string | number, AdmittedRootField>()));
  fields.set(path.key, { context, scope });
}

/**
 * The tenant the root field above a GraphQL field was admitted to, or `undefined` when none was
 * (a `@NoTenant()` root field, one run without a tenant, or none admitted by the interceptor).
 * @internal
 */
export function graphqlOperationTenant(
  gqlContext: unknown,
  info: unknown,
): AdmittedRootField | undefined {
  if (!isObject(gqlContext)) return undefined;
  const fields = admitted.get(gqlContext);
  let path = (info as ResolveInfoLike | undefined)?.path;
  if (fields === undefined || path === undefined) return undefined;
  while (path.prev !== undefined) path = path.prev;
  return fields.get(path.key);
}

function isObject(value: unknown): value is object {
  return value !== null && typeof value === 'object';
}
