import { SchemaDb } from '../../core/schema-db.js';
import type { TenantContext } from './tenant-context.js';

const ASYNC_METHODS = [
  'query',
  'execute',
  'fetchAll',
  'fetchOne',
  'fetchValue',
  'transaction',
] as const;

type AsyncMethod = (...args: unknown[]) => Promise<unknown>;

/**
 * A `SchemaDb` stand-in that forwards every call to the current tenant's manager, so services
 * that inject it stay singletons. Outside a tenant context, its async methods reject and its
 * other members throw `TenantContextMissingError`.
 */
export function createTenantDbProxy(context: TenantContext): SchemaDb {
  // One forwarder per async method, made once: each call looks up the tenant of its own flow.
  const forwarders = new Map<string | symbol, AsyncMethod>(
    ASYNC_METHODS.map((method) => [method, forwarder(context, method)]),
  );
  // Nest's explorers (@nestjs/schedule, @nestjs/bullmq, …) read every method of every provider
  // at start-up, outside any tenant: a method reads as a function that finds its tenant when
  // called, and only a property (`schema`, `inTransaction`) needs the tenant to be read.
  const methods = new Map<string | symbol, (...args: unknown[]) => unknown>(
    syncMethodNames().map((name) => [name, lateBound(context, name)]),
  );
  return new Proxy(Object.create(SchemaDb.prototype) as SchemaDb, {
    get(_target, property) {
      const forward = forwarders.get(property) ?? methods.get(property);
      if (forward !== undefined) return forward;
      // Only SchemaDb's own members reach the context: Nest and `await` probe providers for
      // `then`, `onModuleInit` and the like, which must read as absent, not throw.
      if (property === 'constructor') return SchemaDb;
      if (typeof property === 'symbol' || !(property in SchemaDb.prototype)) return undefined;
      const db = context.requireDb();
      const value: unknown = Reflect.get(db, property, db);
      return typeof value === 'function' ? (value as () => unknown).bind(db) : value;
    },
    has(_target, property) {
      return property in SchemaDb.prototype;
    },
  });
}

/** Calls `method` on the current tenant's manager; outside a tenant context, rejects. */
function forwarder(context: TenantContext, method: (typeof ASYNC_METHODS)[number]): AsyncMethod {
  return (...args) => {
    try {
      const db = context.requireDb() as unknown as Record<string, AsyncMethod>;
      return db[method](...args);
    } catch (err) {
      return Promise.reject(err);
    }
  };
}

/** SchemaDb's methods other than the async ones (and not its getters). */
function syncMethodNames(): string[] {
  return Object.entries(Object.getOwnPropertyDescriptors(SchemaDb.prototype))
    .filter(([name, d]) => name !== 'constructor' && typeof d.value === 'function')
    .map(([name]) => name)
    .filter((name) => !(ASYNC_METHODS as readonly string[]).includes(name));
}

/** Calls `method` on the current tenant's manager; outside a tenant context, throws. */
function lateBound(context: TenantContext, method: string): (...args: unknown[]) => unknown {
  return (...args) => {
    const db = context.requireDb() as unknown as Record<string, (...a: unknown[]) => unknown>;
    return db[method](...args);
  };
}
