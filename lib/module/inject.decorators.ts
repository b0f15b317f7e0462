import { Inject } from '@nestjs/common';
import { getPoolToken, getSchemaDbToken, getTenantDbToken } from './database.tokens.js';

/**
 * Injects the `SchemaDb` of a named schema (declared in `schemas` or with `forFeature`), or the
 * default manager with unqualified table names when called without a name.
 *
 * @example constructor(@InjectSchemaDb('orders') private readonly db: SchemaDb) {}
 */
export const InjectSchemaDb = (schema?: string): ParameterDecorator & PropertyDecorator =>
  Inject(getSchemaDbToken(schema));

/**
 * Injects the shared `pg.Pool`, for the rare code that needs the driver directly (LISTEN, COPY).
 * Prefer a `SchemaDb`; a client you check out yourself must be released in a `finally`.
 */
export const InjectPool = (): ParameterDecorator & PropertyDecorator => Inject(getPoolToken());

/**
 * Injects the current tenant's `SchemaDb`: a singleton stand-in that forwards each call to the
 * manager of the tenant resolved for the current request (or set by `TenantService.run()`), so
 * the services using it stay singletons. Outside a tenant context it throws
 * `TenantContextMissingError`. A transaction opened through it stays on one connection.
 *
 * @example constructor(@InjectTenantDb() private readonly db: SchemaDb) {}
 */
export const InjectTenantDb = (): ParameterDecorator & PropertyDecorator =>
  Inject(getTenantDbToken());
