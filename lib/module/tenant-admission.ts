import { Inject, Injectable, Optional, type ExecutionContext } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { DrainController } from '../connection/drain-controller.js';
import type { SchemaDb } from '../core/schema-db.js';
import type { ResolvedTenancyOptions } from '../tenancy/tenancy-options.js';
import { TenantContext, type TenantScope } from '../tenancy/routing/tenant-context.js';
import { TenantRegistry } from '../tenancy/registry/tenant-registry.js';
import {
  TenantError,
  TenantNotFoundError,
  TenantRequiredError,
  TenantSuspendedError,
} from '../tenancy/tenant.errors.js';
import { TENANCY_OPTIONS } from './database.internal-constants.js';
import { authorizeTenant } from './tenant-access.js';

/** How a unit of work names its tenant to {@link TenantAdmission.admit}. */
export interface TenantAdmissionOptions {
  /**
   * What the work is, for the message of a `TenantRequiredError` when it names no tenant:
   * `'job "send-invoice" of queue "mail"'`, `'message "orders.created"'`.
   */
  readonly source: string;
  /**
   * The Nest execution context `tenancy.authorize` is called with, as for a request: the job,
   * socket or message is in `context.getArgs()`. Without one the hook is not called, which is
   * right only for work the application itself starts for a tenant (a schedule's fan-out over
   * the active tenants), never for work that arrives from outside.
   */
  readonly context?: ExecutionContext;
}

/**
 * The door every unit of work outside an HTTP request goes through to reach a tenant: a queue's
 * job, a socket's message, a microservice's message, a scheduled run. It applies the checks a
 * request gets, in the same order, and fails closed:
 * 1. no tenant named: `TenantRequiredError` (never a default tenant);
 * 2. malformed id: `InvalidTenantIdError`; `tenancy.authorize` refusing: `TenantAccessDeniedError`
 *    (before the tenant is looked up, so a refused caller learns nothing);
 * 3. unknown or dropped: `TenantNotFoundError`; suspended: `TenantSuspendedError`.
 *
 * Then it runs the work in the tenant's context, so `@InjectTenantDb()` reaches that tenant, and
 * as admitted work, so a graceful shutdown lets it finish and refuses new work with
 * `DatabaseShuttingDownError`. Provided (and exported) by `DatabaseModule` when `tenancy` is set.
 *
 * @example
 * const scope = await admission.admit(job.data.tenantId, { source: `job ${job.name}`, context });
 * await admission.run(scope, () => handler(job));
 */
@Injectable()
export class TenantAdmission {
  constructor(
    private readonly registry: TenantRegistry,
    private readonly context: TenantContext,
    @Inject(TENANCY_OPTIONS) private readonly options: ResolvedTenancyOptions,
    private readonly moduleRef: ModuleRef,
    @Optional() private readonly drain?: DrainController,
  ) {}

  /** The tenant of the work in progress, or `undefined` outside any: to stamp on outgoing work. */
  currentTenantId(): string | undefined {
    return this.context.current?.tenantId;
  }

  /**
   * Checks that `id` names a tenant this work may serve now, and returns its scope.
   * @throws TenantRequiredError, InvalidTenantIdError, TenantAccessDeniedError,
   *   TenantNotFoundError, TenantSuspendedError (all `TenantError`s), or what the hook throws
   *   when it throws a Nest `HttpException`.
   */
  async admit(id: unknown, options: TenantAdmissionOptions): Promise<TenantScope> {
    if (id === undefined || id === null || id === '') throw new TenantRequiredError(options.source);
    this.registry.validate(id);
    if (options.context && this.options.authorize)
      await authorizeTenant(this.options, id, options.context, this.moduleRef);
    const entry = await this.registry.require(id);
    return { tenantId: entry.info.id, db: entry.db };
  }

  /**
   * Runs `fn` in `scope` (from {@link admit}) as admitted work. A failure because the tenant was
   * dropped while `fn` ran is a `TenantNotFoundError` with the original error as its `cause`.
   */
  async run<T>(scope: TenantScope, fn: () => T | Promise<T>): Promise<T> {
    const work = async () => this.context.run(scope, fn);
    try {
      return await (this.drain ? this.drain.admit(work) : work());
    } catch (err) {
      throw await this.registry.vanishedTenantError(scope.tenantId, err);
    }
  }

  /**
   * Runs `fn` with no current tenant (even inside one), as admitted work: for work marked
   * tenant-free, such as a `@NoTenant()` job processor.
   */
  async runWithoutTenant<T>(fn: () => T | Promise<T>): Promise<T> {
    const work = async () => this.context.runWithout(fn);
    return this.drain ? this.drain.admit(work) : work();
  }

  /**
   * Whether tenant `id` may still be served, as the registry knows now (within
   * `tenancy.maxStalenessMs` of a change on any instance): `null` when it may, else the error a
   * new unit of work would get (`TenantSuspendedError`, `TenantNotFoundError`). For long-lived
   * work admitted once, such as an open socket, to notice a suspension or a drop.
   *
   * Given `admitted`, the scope the work was admitted with ({@link admit}), it also answers
   * `TenantNotFoundError` when the tenant no longer lives where that scope reaches: dropped and
   * created again in the other tier, or moved between tiers since. Running more work in that
   * scope would reach the old home (a dropped schema, or pooled rows of a tenant that has left
   * the pooled tier): admit the work again instead.
   */
  async check(id: string, admitted?: TenantScope): Promise<TenantError | null> {
    try {
      const entry = await this.registry.require(id);
      if (admitted !== undefined && !sameHome(admitted.db, entry.db)) {
        return new TenantNotFoundError(id, {
          cause: new Error(
            `Tenant "${id}" no longer lives where this work was admitted: it was dropped and created again, or moved to another tier. Admit the work again.`,
          ),
        });
      }
      return null;
    } catch (err) {
      if (err instanceof TenantSuspendedError || err instanceof TenantNotFoundError) return err;
      throw err;
    }
  }
}

/** Whether two managers reach the same rows: the same schema, held to the same pooled tenant. */
function sameHome(a: SchemaDb, b: SchemaDb): boolean {
  return a === b || (a.schema === b.schema && a.pooledTenantId === b.pooledTenantId);
}
