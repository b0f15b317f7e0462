// The labels every exporter gives a query: bounded, however many schemas and tenants exist.
import type { QueryEvent } from '../../core/query/query-event.js';

/** Caps distinct tenant label values; the rest share `other`. */
export class TenantLabels {
  readonly #seen = new Set<string>();
  constructor(private readonly max: number) {}
  of(tenantId: string | undefined): string {
    if (tenantId === undefined) return '';
    if (this.#seen.has(tenantId)) return tenantId;
    if (this.#seen.size >= this.max) return 'other';
    this.#seen.add(tenantId);
    return tenantId;
  }
}

/**
 * Where a query ran, as a bounded label: a named schema by its name, the default manager as `''`,
 * the pooled tier's schema by its name, and every other schema (one per tenant) as one shared value,
 * `tenant_*` (the tenancy prefix and `*`, which no schema name can contain) or `*`. Tenants are told apart only by the capped
 * `tenant` label, so the series count is bounded by the named schemas and `maxTenantLabels`,
 * however many tenants exist.
 */
export class SchemaLabels {
  readonly #tenantValue: string;
  constructor(
    /** Names of the named schemas; read at query time, so late registrations count. */
    private readonly named: ReadonlySet<string>,
    private readonly tenantSchemaPrefix?: string,
    /** The pooled tier's schema (`tenancy.pooled`): one value for every pooled tenant's query. */
    private readonly pooledSchema?: string,
  ) {
    this.#tenantValue = `${tenantSchemaPrefix ?? ''}*`;
  }
  of(schema: string | null): string {
    if (schema === null) return '';
    if (this.named.has(schema) || schema === this.pooledSchema) return schema;
    const prefix = this.tenantSchemaPrefix;
    return prefix !== undefined && schema.startsWith(prefix) ? this.#tenantValue : '*';
  }
}

/** The labels (attributes) of a query event. */
export function queryLabels(
  event: QueryEvent,
  schemas: SchemaLabels,
  tenants: TenantLabels | undefined,
): Record<string, string> {
  return {
    schema: schemas.of(event.schema),
    operation: event.operation,
    outcome: event.error ? 'error' : 'ok',
    ...(tenants ? { tenant: tenants.of(event.tenantId) } : {}),
  };
}
