import { Injectable } from '@nestjs/common';
import { InjectTenantDb, SchemaDb } from 'nestjs-pg-tenancy';

export interface Project {
  id: number;
  name: string;
  createdAt: Date;
}

const COLUMNS = 'id, name, created_at AS "createdAt"';

@Injectable()
export class ProjectsService {
  // The current request's tenant: {{tables.projects}} becomes "tenant_acme"."projects" for acme.
  constructor(@InjectTenantDb() private readonly db: SchemaDb) {}

  list(): Promise<Project[]> {
    return this.db.fetchAll<Project>(`SELECT ${COLUMNS} FROM {{tables.projects}} ORDER BY id`);
  }

  async create(name: string): Promise<Project> {
    const project = await this.db.fetchOne<Project>(
      `INSERT INTO {{tables.projects}} (name) VALUES ($1) RETURNING ${COLUMNS}`,
      [name],
    );
    return project!;
  }
}
