import { Injectable } from '@nestjs/common';
import { InjectSchemaDb, SchemaDb } from 'nestjs-pg-tenancy';

export interface AuditEvent {
  id: number;
  at: Date;
  action: string;
  tenantId: string | null;
  detail: Record<string, unknown>;
}

/** An append-only log of administrative actions, in the `audit` schema. */
@Injectable()
export class AuditService {
  constructor(@InjectSchemaDb('audit') private readonly db: SchemaDb) {}

  async record(
    action: string,
    tenantId: string | null,
    detail: Record<string, unknown> = {},
  ): Promise<void> {
    await this.db.execute(
      'INSERT INTO {{tables.events}} (action, tenant_id, detail) VALUES ($1, $2, $3)',
      [action, tenantId, JSON.stringify(detail)],
    );
  }

  recent(limit = 50): Promise<AuditEvent[]> {
    return this.db.fetchAll<AuditEvent>(
      `SELECT id, at, action, tenant_id AS "tenantId", detail
         FROM {{tables.events}} ORDER BY id DESC LIMIT $1`,
      [limit],
    );
  }
}
