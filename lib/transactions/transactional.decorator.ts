import type { SchemaDb } from '../core/schema-db.js';
import { PROPAGATIONS, type TransactionOptions } from '../core/transaction/transaction-options.js';
import { InvalidOptionsError, TransactionalHostMissingError } from '../shared/errors.js';

/** Options of {@link Transactional}: the same as `db.transaction()`'s. */
export type TransactionalOptions = TransactionOptions;

/** @internal The manager a bound instance starts its transactions on (set at module init). */
export const TRANSACTION_HOST = Symbol('nestjs-pg-tenancy:transactionHost');
/** @internal Marks a prototype that has `@Transactional()` methods. */
export const TRANSACTIONAL_CLASS = Symbol('nestjs-pg-tenancy:transactional');

type Bound = { [TRANSACTION_HOST]?: SchemaDb };
type MetadataReflect = {
  getMetadataKeys?(target: object): unknown[];
  getMetadata?(key: unknown, target: object): unknown;
  defineMetadata?(key: unknown, value: unknown, target: object): void;
};

/**
 * Runs the decorated method in a transaction that follows the call: every manager on the
 * application's pool used while it runs (`@InjectTenantDb()`, `@InjectSchemaDb()`,
 * `withSchema()`, in this service or any other it calls) joins that transaction. The method
 * commits when its promise resolves and rolls back when it rejects.
 *
 * By default (`propagation: 'join'`) a decorated method called inside another transaction
 * joins it and the outermost one commits; `retries` then re-runs the outermost unit, so the
 * whole decorated method is re-run on SQLSTATE 40001/40P01 and must be safe to run again.
 *
 * Works on singleton providers and controllers of an application that imports
 * `DatabaseModule.forRoot()`: they are bound to its pool when the module initialises. The
 * method always returns a promise.
 *
 * @example
 * @Injectable()
 * export class CheckoutService {
 *   constructor(private readonly orders: OrdersService, private readonly stock: StockService) {}
 *
 *   @Transactional({ isolationLevel: 'serializable', retries: 3 })
 *   async checkout(cart: Cart) {
 *     await this.stock.reserve(cart);   // @InjectTenantDb(): joins
 *     return this.orders.create(cart);  // @InjectSchemaDb('orders'): joins, same connection
 *   }
 * }
 */
export function Transactional(options: TransactionalOptions = {}): MethodDecorator {
  const frozen = Object.freeze({ ...options });
  if (frozen.retries !== undefined && (!Number.isInteger(frozen.retries) || frozen.retries < 0)) {
    throw new InvalidOptionsError(
      `@Transactional() retries must be a non-negative integer, received ${String(frozen.retries)}.`,
    );
  }
  if (frozen.propagation !== undefined && !PROPAGATIONS.has(frozen.propagation)) {
    throw new InvalidOptionsError(
      `@Transactional() propagation ${JSON.stringify(frozen.propagation)} is unknown: use ${[...PROPAGATIONS].map((p) => `'${p}'`).join(', ')}.`,
    );
  }
  return (target, key, descriptor) => {
    const original = descriptor.value as unknown;
    if (typeof original !== 'function') {
      throw new InvalidOptionsError(
        `@Transactional() decorates methods; ${String(key)} is not a method.`,
      );
    }
    const name = `${target.constructor.name}.${String(key)}`;
    const method = original as (...args: unknown[]) => unknown;
    const wrapped = function (this: Bound, ...args: unknown[]): Promise<unknown> {
      const host = this?.[TRANSACTION_HOST];
      if (host === undefined) return Promise.reject(new TransactionalHostMissingError(name));
      return host.transaction(async () => method.apply(this, args), frozen);
    };
    Object.defineProperty(wrapped, 'name', { value: method.name });
    copyMetadata(method, wrapped);
    Object.defineProperty(target, TRANSACTIONAL_CLASS, { value: true, configurable: true });
    descriptor.value = wrapped as typeof descriptor.value;
    return descriptor;
  };
}

// Route, guard and other Nest decorators applied below this one stored their metadata on the
// original function; the wrapper must carry it or they would silently stop working.
function copyMetadata(from: object, to: object): void {
  const reflect = Reflect as unknown as MetadataReflect;
  if (!reflect.getMetadataKeys || !reflect.getMetadata || !reflect.defineMetadata) return;
  for (const key of reflect.getMetadataKeys(from)) {
    reflect.defineMetadata(key, reflect.getMetadata(key, from), to);
  }
}
