import { SchemaDb } from '../../core/schema-db.js';
import type { TenantContext } from './tenant-context.js';

const ASYNC_METHODS = new Set([
  'query',
  'execute',
  'fetchAll',
  'fetchOne',
  'fetchValue',
  'transaction',
]);

/**
 * A `SchemaDb` stand-in that forwards every call to the current tenant's manager, so services
 * that inject it stay singletons. Outside a tenant context, its async methods reject and its
 * other members throw `TenantContextMissingError`.
 */
export function createTenantDbProxy(context: TenantContext): SchemaDb {
  return new Proxy(Object.create(SchemaDb.prototype) as SchemaDb, {
    get(_target, property) {
      // Only SchemaDb's own members reach the context: Nest and `await` probe providers for
      // `then`, `onModuleInit` and the like, which must read as absent, not throw.
      if (property === 'constructor') return SchemaDb;
      if (typeof property === 'symbol' || !(property in SchemaDb.prototype)) return undefined;
      if (ASYNC_METHODS.has(property)) {
        return async (...args: unknown[]) => {
          const db = context.requireDb() as unknown as Record<string, (...a: unknown[]) => unknown>;
          return db[property](...args);
        };
      }
      const db = context.requireDb();
      const value: unknown = Reflect.get(db, property, db);
      return typeof value === 'function' ? (value as () => unknown).bind(db) : value;
    },
    has(_target, property) {
      return property in SchemaDb.prototype;
    },
  });
}
