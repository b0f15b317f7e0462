import type { GraphQLFieldResolver, GraphQLSchema } from 'graphql';
import { graphqlOperationTenant } from '../../module/graphql-operation-tenants.js';
import { toGraphqlError } from '../../observability/http-errors.js';
import { TenantNotFoundError } from '../../tenancy/tenant.errors.js';

type Resolver = GraphQLFieldResolver<unknown, unknown>;

/** The resolvers this module wrapped, so a schema transformed twice is wrapped once. */
const wrapped = new WeakSet<Resolver>();

/**
 * Runs every field resolver of `schema` in the tenant its operation's root field runs in, and
 * returns the schema (changed in place). Pass it as `transformSchema` of `GraphQLModule`:
 *
 * ```ts
 * GraphQLModule.forRoot<ApolloDriverConfig>({
 *   driver: ApolloDriver,
 *   autoSchemaFile: true,
 *   transformSchema: tenantSchema,
 * });
 * ```
 *
 * `TenantInterceptor` resolves, authorizes and checks the tenant of each root field (a query or
 * mutation) after its guards, as for an HTTP route, and runs it in that tenant. graphql-js calls
 * the field resolvers below it (`@ResolveField()`) later, outside that async context; with this
 * transform each runs in the tenant admitted for its own root field, found through the
 * operation's GraphQL context, which is the request's own. Under a `@NoTenant()` root field, or
 * one that ran without a tenant, they run without one: `@InjectTenantDb()` throws there.
 *
 * Only fields with a resolver of their own are wrapped: a field read from the parent object runs
 * no code of yours. Root fields are left to the interceptor.
 */
export function tenantSchema(schema: GraphQLSchema): GraphQLSchema {
  const roots = new Set<unknown>([
    schema.getQueryType(),
    schema.getMutationType(),
    schema.getSubscriptionType(),
  ]);
  for (const type of Object.values(schema.getTypeMap())) {
    // Object and interface types, whose fields resolve. Told apart by shape, not with graphql-js's
    // `isObjectType`, whose instanceof check fails where two copies of graphql are installed.
    if (roots.has(type) || type.name.startsWith('__') || !('getInterfaces' in type)) continue;
    const fields: Record<string, { resolve?: Resolver }> = type.getFields();
    for (const field of Object.values(fields)) {
      const resolve = field.resolve;
      if (resolve === undefined || wrapped.has(resolve)) continue;
      const inTenant = inOperationTenant(resolve);
      wrapped.add(inTenant);
      field.resolve = inTenant;
    }
  }
  return schema;
}

function inOperationTenant(resolve: Resolver): Resolver {
  return (source, args, context, info) => {
    const admitted = graphqlOperationTenant(context, info);
    if (admitted === undefined) return resolve(source, args, context, info);
    return admitted.context.run(admitted.scope, () => {
      // No interceptor runs around a field resolver: a tenant gone under it (its manager retired
      // by the drop) answers NOT_FOUND here, as the interceptor answers for a root field.
      try {
        const value = resolve(source, args, context, info);
        return isThenable(value) ? value.then(undefined, presented) : value;
      } catch (err) {
        return presented(err);
      }
    });
  };
}

/** Rethrows `err`, a `TenantNotFoundError` with its GraphQL `extensions`. */
function presented(err: unknown): never {
  throw err instanceof TenantNotFoundError ? toGraphqlError(err) : err;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}
