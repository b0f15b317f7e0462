import { Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { TenantAlreadyExistsError, TenantService } from 'nestjs-pg-tenancy';
import { TenantsAdminService } from '../admin/tenants-admin.service.js';
import { ProjectsService } from '../projects/projects.service.js';
import { TasksService } from '../tasks/tasks.service.js';

const DEMO = [
  {
    tenant: { id: 'acme', name: 'Acme Corporation', plan: 'team' },
    projects: [
      { name: 'Rocket skates', tasks: ['Order wheels', 'Test on the canyon road'] },
      { name: 'Giant magnet', tasks: ['Find a supplier'] },
    ],
  },
  {
    tenant: { id: 'globex', name: 'Globex', plan: 'free' },
    projects: [
      { name: 'Volcano lair', tasks: ['Hire a contractor'] },
      { name: 'Employee handbook', tasks: [] },
    ],
  },
];

/**
 * On the very first start (no tenant exists yet), creates a few tenants with projects so there
 * is something to look at. Later starts find tenants and do nothing.
 */
@Injectable()
export class DemoData implements OnApplicationBootstrap {
  readonly #logger = new Logger(DemoData.name);

  constructor(
    private readonly tenants: TenantService,
    private readonly admin: TenantsAdminService,
    private readonly projects: ProjectsService,
    private readonly tasks: TasksService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    if ((await this.tenants.list()).length > 0) return;
    for (const demo of DEMO) {
      try {
        await this.admin.create(demo.tenant);
      } catch (err) {
        if (err instanceof TenantAlreadyExistsError) continue; // another instance got there first
        throw err;
      }
      // Outside a request, run() makes `demo.tenant.id` the current tenant, so the same
      // services that serve requests (with @InjectTenantDb()) write to its schema.
      await this.tenants.run(demo.tenant.id, async () => {
        for (const { name, tasks } of demo.projects) {
          const project = await this.projects.create({ name });
          for (const title of tasks) await this.tasks.create(project.id, { title });
        }
      });
    }
    this.#logger.log(`Created demo tenants: ${DEMO.map((d) => d.tenant.id).join(', ')}`);
  }
}
