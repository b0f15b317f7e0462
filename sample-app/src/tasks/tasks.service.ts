import { BadRequestException, Injectable, NotFoundException } from '@nestjs/common';
import { InjectTenantDb, SchemaDb, TenantContext } from 'nestjs-pg-tenancy';
import { currentTenantId } from '../common/current-tenant.js';

export interface Task {
  id: number;
  projectId: number;
  title: string;
  done: boolean;
  assigneeId: number | null;
  createdAt: Date;
}

const TASK =
  'id, project_id AS "projectId", title, done, assignee_id AS "assigneeId", created_at AS "createdAt"';

/** A row as `pg` returns it: `bigint` ids arrive as strings (see `toProject` for why `Number`). */
type TaskRow = Omit<Task, 'id' | 'projectId'> & { id: string; projectId: string };
const toTask = (row: TaskRow): Task => ({
  ...row,
  id: Number(row.id),
  projectId: Number(row.projectId),
});

@Injectable()
export class TasksService {
  constructor(
    @InjectTenantDb() private readonly db: SchemaDb,
    private readonly context: TenantContext,
  ) {}

  async list(projectId: number): Promise<Task[]> {
    await this.#requireProject(this.db, projectId);
    const rows = await this.db.fetchAll<TaskRow>(
      `SELECT ${TASK} FROM {{tables.tasks}} WHERE project_id = $1 ORDER BY id`,
      [projectId],
    );
    return rows.map(toTask);
  }

  /**
   * Adds a task. The assignee must be a member of the tenant: that is checked in the shared
   * `accounts` schema within the same transaction (`withSchema` stays on its connection).
   */
  create(projectId: number, input: { title: string; assigneeId?: number | null }): Promise<Task> {
    return this.db.transaction(async (tx) => {
      await this.#requireProject(tx, projectId);
      if (input.assigneeId != null) await this.#requireMember(tx, input.assigneeId);
      const task = await tx.fetchOne<TaskRow>(
        `INSERT INTO {{tables.tasks}} (project_id, title, assignee_id) VALUES ($1, $2, $3)
         RETURNING ${TASK}`,
        [projectId, input.title, input.assigneeId ?? null],
      );
      return toTask(task!);
    });
  }

  /** Changes the given fields; `assigneeId: null` unassigns. */
  update(
    id: number,
    patch: { title?: string; done?: boolean; assigneeId?: number | null },
  ): Promise<Task> {
    return this.db.transaction(async (tx) => {
      if (patch.assigneeId != null) await this.#requireMember(tx, patch.assigneeId);
      const task = await tx.fetchOne<TaskRow>(
        `UPDATE {{tables.tasks}}
            SET title = coalesce($2, title),
                done = coalesce($3, done),
                assignee_id = CASE WHEN $4 THEN $5 ELSE assignee_id END
          WHERE id = $1
         RETURNING ${TASK}`,
        [
          id,
          patch.title ?? null,
          patch.done ?? null,
          patch.assigneeId !== undefined,
          patch.assigneeId ?? null,
        ],
      );
      if (!task) throw new NotFoundException(`No task ${id}.`);
      return toTask(task);
    });
  }

  async remove(id: number): Promise<void> {
    const deleted = await this.db.execute('DELETE FROM {{tables.tasks}} WHERE id = $1', [id]);
    if (deleted === 0) throw new NotFoundException(`No task ${id}.`);
  }

  async #requireProject(db: SchemaDb, projectId: number): Promise<void> {
    const found = await db.fetchValue('SELECT 1 FROM {{tables.projects}} WHERE id = $1', [
      projectId,
    ]);
    if (found === null) throw new NotFoundException(`No project ${projectId}.`);
  }

  async #requireMember(tx: SchemaDb, userId: number): Promise<void> {
    const member = await tx
      .withSchema('accounts')
      .fetchValue('SELECT 1 FROM {{tables.memberships}} WHERE tenant_id = $1 AND user_id = $2', [
        currentTenantId(this.context),
        userId,
      ]);
    if (member === null) {
      throw new BadRequestException(`User ${userId} is not a member of this tenant.`);
    }
  }
}
