// The registry trigger's change notices: what one announces, and how its payload is read.
import type { TenantStatus } from '../tenant-state.js';

/** A change announced by the registry table's trigger. */
export interface RegistryNotice {
  readonly id: string;
  /** `null` when an older instance announced it (payload: the bare id). */
  readonly version: number | null;
  readonly op: 'insert' | 'update' | 'delete' | 'truncate' | 'unknown';
  readonly status?: TenantStatus;
}

/** Parses a notification payload (JSON from the trigger, or a bare id from an older release). */
export function parseNotice(payload: string): RegistryNotice | undefined {
  if (!payload.startsWith('{')) return { id: payload, version: null, op: 'unknown' };
  try {
    const value = JSON.parse(payload) as {
      id?: unknown;
      version?: unknown;
      op?: unknown;
      status?: unknown;
    };
    if (typeof value.id !== 'string') return undefined;
    return {
      id: value.id,
      version: typeof value.version === 'number' ? value.version : Number(value.version),
      op: value.op as RegistryNotice['op'],
      ...(typeof value.status === 'string' ? { status: value.status as TenantStatus } : {}),
    };
  } catch {
    return undefined;
  }
}
