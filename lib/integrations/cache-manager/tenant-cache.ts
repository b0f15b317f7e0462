import { Inject, Injectable } from '@nestjs/common';
import { CACHE_MANAGER } from '@nestjs/cache-manager';
import type { Cache } from 'cache-manager';
import { TenantAdmission } from '../../module/tenant-admission.js';
import { TenantContextMissingError } from '../../tenancy/tenant.errors.js';

/** One entry of `mset`. */
export interface CacheEntry<T> {
  /** The key, in the view's namespace. */
  key: string;
  /** The value stored. */
  value: T;
  /** Time to live in ms. Default: the store's. */
  ttl?: number;
}

/** The key-value operations of a cache, on keys of one namespace (a tenant's, or the global one). */
export interface CacheView {
  /** The value stored under `key`, or `undefined`. */
  get<T>(key: string): Promise<T | undefined>;
  /** The values stored under `keys`, in order (`undefined` where none). */
  mget<T>(keys: readonly string[]): Promise<Array<T | undefined>>;
  /** Stores `value` under `key` for `ttl` ms (Default: the store's). Resolves with `value`. */
  set<T>(key: string, value: T, ttl?: number): Promise<T>;
  /** Stores each entry; resolves with them. */
  mset<T>(list: ReadonlyArray<CacheEntry<T>>): Promise<Array<CacheEntry<T>>>;
  /** Removes `key`. */
  del(key: string): Promise<boolean>;
  /** Removes `keys`. */
  mdel(keys: readonly string[]): Promise<boolean>;
  /** When `key` expires (a timestamp in ms), or `undefined`. */
  ttl(key: string): Promise<number | undefined>;
  /** The value under `key`; if none, calls `fn`, stores its result for `ttl` ms and returns it. */
  wrap<T>(key: string, fn: () => T | Promise<T>, ttl?: number): Promise<T>;
  /** The key as the store sees it, namespace included. */
  keyOf(key: string): string;
}

/**
 * `@nestjs/cache-manager`'s cache with every key in the current tenant's namespace
 * (`tenant:<id>:<key>`), so two tenants' equal keys never meet. Outside a tenant context each
 * operation rejects with `TenantContextMissingError`: never a shared default namespace. Data
 * meant for all tenants goes through {@link global} (`global:<key>`), explicitly. A tenant id
 * cannot contain `:` (it is part of a schema name), so no tenant's keys reach another's or the
 * global ones. `clear()` is not offered: it would empty every tenant's namespace. Provided by
 * `TenantCacheModule` beside `CacheModule.register()`.
 *
 * @example
 * ```ts
 * const plan = await this.cache.wrap('plan', () => this.plans.load(), 60_000);
 * ```
 */
@Injectable()
export class TenantCache implements CacheView {
  /** The namespace shared by all tenants: `global:<key>`, usable with or without a tenant. */
  readonly global: CacheView;
  readonly #tenant: CacheView;

  constructor(
    @Inject(CACHE_MANAGER) cache: Cache,
    private readonly admission: TenantAdmission,
  ) {
    this.global = view(cache, (key) => `global:${key}`);
    this.#tenant = view(cache, (key) => this.keyOf(key));
  }

  /**
   * `tenant:<current tenant>:<key>`.
   * @throws TenantContextMissingError outside a tenant context.
   */
  keyOf(key: string): string {
    const tenantId = this.admission.currentTenantId();
    if (tenantId === undefined) throw new TenantContextMissingError();
    return `tenant:${tenantId}:${key}`;
  }

  /** The current tenant's value under `key`, or `undefined`. */
  get<T>(key: string): Promise<T | undefined> {
    return this.#tenant.get<T>(key);
  }

  /** The current tenant's values under `keys`, in order. */
  mget<T>(keys: readonly string[]): Promise<Array<T | undefined>> {
    return this.#tenant.mget<T>(keys);
  }

  /** Stores `value` under the current tenant's `key` for `ttl` ms (Default: the store's). */
  set<T>(key: string, value: T, ttl?: number): Promise<T> {
    return this.#tenant.set(key, value, ttl);
  }

  /** Stores each entry under the current tenant's keys. */
  mset<T>(list: ReadonlyArray<CacheEntry<T>>): Promise<Array<CacheEntry<T>>> {
    return this.#tenant.mset(list);
  }

  /** Removes the current tenant's `key`. */
  del(key: string): Promise<boolean> {
    return this.#tenant.del(key);
  }

  /** Removes the current tenant's `keys`. */
  mdel(keys: readonly string[]): Promise<boolean> {
    return this.#tenant.mdel(keys);
  }

  /** When the current tenant's `key` expires (a timestamp in ms), or `undefined`. */
  ttl(key: string): Promise<number | undefined> {
    return this.#tenant.ttl(key);
  }

  /** The current tenant's value under `key`, or `fn`'s result, stored for `ttl` ms. */
  wrap<T>(key: string, fn: () => T | Promise<T>, ttl?: number): Promise<T> {
    return this.#tenant.wrap(key, fn, ttl);
  }
}

/** The operations of `cache` on keys mapped by `keyOf`; a throwing `keyOf` rejects. */
function view(cache: Cache, keyOf: (key: string) => string): CacheView {
  return {
    keyOf,
    get: async (key) => cache.get(keyOf(key)),
    mget: async (keys) => cache.mget(keys.map(keyOf)),
    set: async (key, value, ttl) => cache.set(keyOf(key), value, ttl),
    mset: async (list) => {
      const keys = list.map((e) => keyOf(e.key));
      const stored = await cache.mset(list.map((e, i) => ({ ...e, key: keys[i] })));
      return stored.map((e, i) => ({ ...e, key: list[i].key }));
    },
    del: async (key) => cache.del(keyOf(key)),
    mdel: async (keys) => cache.mdel(keys.map(keyOf)),
    ttl: async (key) => cache.ttl(keyOf(key)),
    wrap: async (key, fn, ttl) => cache.wrap(keyOf(key), fn, ttl),
  };
}
