import { Inject } from '@nestjs/common';
import { integerOption } from '../../shared/option-values.js';
import { TenantScheduleNotWiredError } from './schedule.errors.js';
import { TenantScheduleRunner, type TenantScheduleSummary } from './tenant-schedule.runner.js';

/** Options of {@link ForEachTenant}. */
export interface ForEachTenantOptions {
  /** Tenants run at once. Default: `4` (as `TenantService.forEach`). */
  concurrency?: number;
  /**
   * The job's name in log lines and in the `job` label of the metrics. Keep it a fixed string
   * (never a tenant id: the label's values must stay few). Default: `ClassName.methodName`.
   */
  name?: string;
}

/** Where Nest puts the runner on each instance of a class with a `@ForEachTenant()` method. */
const RUNNER = Symbol('nestjs-pg-tenancy:TenantScheduleRunner');

/**
 * Runs the decorated method once for every **active** tenant, at most `concurrency` at once,
 * each call in that tenant's context (so `@InjectTenantDb()` reaches it), whoever calls it:
 * `@Cron()`, `@Interval()` or `@Timeout()` of `@nestjs/schedule`, or your own code. A tenant
 * suspended or dropped while the run goes on is skipped from the moment the registry knows.
 * One tenant's failure does not stop the others: each is logged with the tenant id, and the
 * run ends with a summary line (and counters, when `metrics` is on). A run that starts while
 * the previous run of the same method on the same instance still goes on is skipped with a
 * warning. The method resolves with a {@link TenantScheduleSummary}, and never rejects for a
 * tenant's failure. Needs `TenantScheduleModule` imported once in the application.
 *
 * @example
 * ```ts
 * @Cron(CronExpression.EVERY_HOUR)
 * @ForEachTenant({ concurrency: 8 })
 * async expireSessions(): Promise<void> {
 *   await this.db.execute('DELETE FROM {{tables.sessions}} WHERE expires_at < now()');
 * }
 * ```
 */
export function ForEachTenant(options: ForEachTenantOptions = {}): MethodDecorator {
  const concurrency =
    options.concurrency === undefined
      ? undefined
      : integerOption(options.concurrency, '@ForEachTenant() concurrency', 1);
  return (target, key, descriptor) => {
    const original = descriptor.value as unknown;
    if (typeof original !== 'function') {
      throw new TypeError(`@ForEachTenant() decorates methods; ${String(key)} is not one.`);
    }
    const job = options.name ?? `${target.constructor.name}.${String(key)}`;
    // Property injection: the runner reaches every instance Nest builds, without a static.
    Inject(TenantScheduleRunner)(target, RUNNER);
    const wrapped = function (this: Record<symbol, unknown>, ...args: unknown[]) {
      const runner = this?.[RUNNER] as TenantScheduleRunner | undefined;
      if (!runner) return Promise.reject(new TenantScheduleNotWiredError(job));
      return runner.run({
        instance: this,
        job,
        concurrency,
        fn: () => (original as (...a: unknown[]) => unknown).apply(this, args),
      }) satisfies Promise<TenantScheduleSummary>;
    };
    // `@Cron()` and friends may sit below this decorator and have tagged the original already.
    for (const metadataKey of Reflect.getOwnMetadataKeys(original)) {
      Reflect.defineMetadata(metadataKey, Reflect.getOwnMetadata(metadataKey, original), wrapped);
    }
    Object.defineProperty(wrapped, 'name', { value: (original as { name: string }).name });
    (descriptor as TypedPropertyDescriptor<unknown>).value = wrapped;
    return descriptor;
  };
}
