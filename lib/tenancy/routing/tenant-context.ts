import { AsyncLocalStorage } from 'node:async_hooks';
import type { SchemaDb } from '../../core/schema-db.js';
import { TenantContextMissingError } from '../tenant.errors.js';

/** What the current async context knows about its tenant. */
export interface TenantScope {
  /** The current tenant's id. */
  readonly tenantId: string;
  /** The manager bound to its schema. */
  readonly db: SchemaDb;
}

/**
 * The ambient tenant of the current request or job, carried by `AsyncLocalStorage`, so that
 * singleton services can reach the current tenant's `SchemaDb` without request-scoped providers.
 * One instance per application (a provider), never a static.
 */
export class TenantContext {
  readonly #storage = new AsyncLocalStorage<TenantScope>();

  /** Runs `fn` with `scope` as the current tenant. */
  run<T>(scope: TenantScope, fn: () => T): T {
    return this.#storage.run(scope, fn);
  }

  /**
   * Runs `fn` with no current tenant, even inside a tenant context (a `@NoTenant()` route under
   * `TenantMiddleware`): `@InjectTenantDb()` throws `TenantContextMissingError` there.
   */
  runWithout<T>(fn: () => T): T {
    return this.#storage.exit(fn);
  }

  /** The current tenant, or `undefined` outside a tenant context. */
  get current(): TenantScope | undefined {
    return this.#storage.getStore();
  }

  /** The current tenant's manager. @throws TenantContextMissingError outside a tenant context. */
  requireDb(): SchemaDb {
    const scope = this.#storage.getStore();
    if (!scope) throw new TenantContextMissingError();
    return scope.db;
  }
}
