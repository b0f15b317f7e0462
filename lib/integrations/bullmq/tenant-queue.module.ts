import { Inject, Module, type DynamicModule, type Provider } from '@nestjs/common';
import {
  BullModule,
  getQueueToken,
  type RegisterQueueAsyncOptions,
  type RegisterQueueOptions,
} from '@nestjs/bullmq';
import type { Queue } from 'bullmq';
import { TenantAdmission } from '../../module/tenant-admission.js';
import { TenantQueue } from './tenant-queue.js';

/** The injection token of the `TenantQueue` named `name`: `'TenantQueue(mail)'`. */
export function getTenantQueueToken(name: string): string {
  return `TenantQueue(${name})`;
}

/** Injects the `TenantQueue` named `name`, registered by `TenantQueueModule.registerQueue()`. */
export const InjectTenantQueue = (name: string): PropertyDecorator & ParameterDecorator =>
  Inject(getTenantQueueToken(name));

/**
 * Registers BullMQ queues whose jobs carry their tenant: `BullModule.registerQueue()` (so
 * `@InjectQueue()` and `@Processor()` work as usual) plus, for each queue, a `TenantQueue`
 * injected with `@InjectTenantQueue(name)`. Needs `BullModule.forRoot()` and a `DatabaseModule`
 * with `tenancy`, as the plain registration needs `forRoot()`.
 *
 * @example
 * imports: [TenantQueueModule.registerQueue({ name: 'mail' })]
 */
@Module({})
export class TenantQueueModule {
  /** `BullModule.registerQueue(...queues)`, with a `TenantQueue` for each. Each needs a `name`. */
  static registerQueue(...queues: RegisterQueueOptions[]): DynamicModule {
    return withTenantQueues(BullModule.registerQueue(...queues), queues);
  }

  /** `BullModule.registerQueueAsync(...queues)`, with a `TenantQueue` for each. Each needs a `name`. */
  static registerQueueAsync(...queues: RegisterQueueAsyncOptions[]): DynamicModule {
    return withTenantQueues(BullModule.registerQueueAsync(...queues), queues);
  }
}

function withTenantQueues(
  bull: DynamicModule,
  queues: ReadonlyArray<{ readonly name?: string }>,
): DynamicModule {
  const providers: Provider[] = queues.map(({ name = 'default' }) => ({
    provide: getTenantQueueToken(name),
    useFactory: (queue: Queue, admission: TenantAdmission) => new TenantQueue(queue, admission),
    inject: [getQueueToken(name), TenantAdmission],
  }));
  return {
    module: TenantQueueModule,
    imports: [bull],
    providers,
    exports: [bull, ...queues.map(({ name = 'default' }) => getTenantQueueToken(name))],
  };
}
