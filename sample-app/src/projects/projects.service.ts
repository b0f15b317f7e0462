import { ForbiddenException, Injectable, NotFoundException } from '@nestjs/common';
import { InjectTenantDb, SchemaDb, TenantContext } from 'nestjs-pg-tenancy';
import { AccountsService } from '../accounts/accounts.service.js';
import { currentTenantId } from '../common/current-tenant.js';

export interface Project {
  id: number;
  name: string;
  description: string;
  createdAt: Date;
}

const PROJECT = 'id, name, description, created_at AS "createdAt"';

/**
 * A row as `pg` returns it: the id is a `bigint` (migrations/tenant/001_projects.sql), which
 * arrives as a string. Ids stay below 2^53 (from 1 on PostgreSQL; from 2^48 × the node's group
 * on a Citus worker), so the API's number is exact.
 */
type ProjectRow = Omit<Project, 'id'> & { id: string };
const toProject = (row: ProjectRow): Project => ({ ...row, id: Number(row.id) });

@Injectable()
export class ProjectsService {
  constructor(
    @InjectTenantDb() private readonly db: SchemaDb, // the current request's tenant
    private readonly accounts: AccountsService,
    private readonly context: TenantContext,
  ) {}

  async list(): Promise<Project[]> {
    const rows = await this.db.fetchAll<ProjectRow>(
      `SELECT ${PROJECT} FROM {{tables.projects}} ORDER BY id`,
    );
    return rows.map(toProject);
  }

  async get(id: number): Promise<Project> {
    const project = await this.db.fetchOne<ProjectRow>(
      `SELECT ${PROJECT} FROM {{tables.projects}} WHERE id = $1`,
      [id],
    );
    if (!project) throw new NotFoundException(`No project ${id}.`);
    return toProject(project);
  }

  /** Creates a project within the limit of the tenant's plan (kept in the shared schema). */
  async create(input: { name: string; description?: string }): Promise<Project> {
    const plan = await this.accounts.planOf(currentTenantId(this.context));
    const project = await this.db.fetchOne<ProjectRow>(
      `INSERT INTO {{tables.projects}} (name, description)
       SELECT $1, $2
        WHERE $3::integer IS NULL OR (SELECT count(*) FROM {{tables.projects}}) < $3
       RETURNING ${PROJECT}`,
      [input.name, input.description ?? '', plan.maxProjects],
    );
    if (!project) {
      throw new ForbiddenException(
        `The ${plan.name} plan allows ${plan.maxProjects} projects; delete one or change plans.`,
      );
    }
    return toProject(project);
  }

  async update(id: number, patch: { name?: string; description?: string }): Promise<Project> {
    const project = await this.db.fetchOne<ProjectRow>(
      `UPDATE {{tables.projects}}
          SET name = coalesce($2, name), description = coalesce($3, description)
        WHERE id = $1
       RETURNING ${PROJECT}`,
      [id, patch.name ?? null, patch.description ?? null],
    );
    if (!project) throw new NotFoundException(`No project ${id}.`);
    return toProject(project);
  }

  /** Deletes the project and its tasks. */
  async remove(id: number): Promise<void> {
    const deleted = await this.db.execute('DELETE FROM {{tables.projects}} WHERE id = $1', [id]);
    if (deleted === 0) throw new NotFoundException(`No project ${id}.`);
  }
}
