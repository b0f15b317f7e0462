import { HttpException } from '@nestjs/common';
import { DatabaseShuttingDownError } from '../../shared/errors.js';
import { TenantError } from '../../tenancy/tenant.errors.js';
import { TenantMessageRefusedError } from './microservices.errors.js';

/**
 * What travels on the wire, shared by the sending and the receiving side (docs/microservices.md
 * shows it per transport):
 * - the tenant: one entry named `x-tenant-id` (or the name given as `header`) outside the
 *   payload: a NATS message header; on TCP and Redis an entry of the Nest packet's `metadata`
 *   (`{ pattern, data, id, metadata: { 'x-tenant-id': 'acme' } }`);
 * - a refusal, as the reply to a request: `{ status: 'error', refused: true, error, message,
 *   tenantId? }`, where `error` is the name of the typed error the receiver failed with.
 */

/** Default name of the tenant's entry in a message's headers or metadata. */
export const TENANT_MESSAGE_HEADER = 'x-tenant-id';

/** The reply body of a refused request. */
export interface TenantRefusal {
  /** As in every error answer of Nest's RPC transports. */
  readonly status: 'error';
  /** Tells a refusal from the other errors a handler may answer with. */
  readonly refused: true;
  /** The receiver's error name, e.g. `'TenantSuspendedError'`. */
  readonly error: string;
  /** The receiver's error message (safe to show: it never echoes raw input). */
  readonly message: string;
  /** The tenant refused, when the receiver's error names one. */
  readonly tenantId?: string;
}

/** The errors a receiver answers with a refusal: safe to show the sender (they never echo raw input). */
export function isRefusal(err: unknown, admitting: boolean): err is Error {
  return (
    err instanceof TenantError ||
    err instanceof DatabaseShuttingDownError ||
    // What tenancy.authorize threw, as it would answer an HTTP request.
    (admitting && err instanceof HttpException)
  );
}

/** The refusal body for `err` (see {@link isRefusal}). */
export function refusalOf(err: Error): TenantRefusal {
  const tenantId = (err as { tenantId?: unknown }).tenantId;
  return {
    status: 'error',
    refused: true,
    error: err.name,
    message: err.message,
    ...(typeof tenantId === 'string' ? { tenantId } : {}),
  };
}

/** The typed error for a refusal the sender received, or `undefined` for any other error. */
export function refusedError(reply: unknown): TenantMessageRefusedError | undefined {
  if (reply === null || typeof reply !== 'object') return undefined;
  const { status, refused, error, message, tenantId } = reply as Partial<
    Record<keyof TenantRefusal, unknown>
  >;
  if (status !== 'error' || refused !== true) return undefined;
  if (typeof error !== 'string' || typeof message !== 'string') return undefined;
  return new TenantMessageRefusedError(
    error,
    message,
    typeof tenantId === 'string' ? tenantId : undefined,
  );
}
