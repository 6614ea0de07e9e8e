import type { Config } from '../config.js';
import type { Db } from '../db/knex.js';
import { countIntegrations } from '../integrations/store.js';
import { transact } from '../db/transaction.js';
import type { Actor } from '../events/actor.js';
import { describeChanges } from '../events/details.js';
import type { EventLog } from '../events/event-log.js';
import type { ProjectModel } from './model.js';
import { getProject, lockProject, updateProject } from './store.js';

/** How many integrations the project holds, of how many its plan allows. */
export interface IntegrationUsage {
  used: number;
  limit: number;
}

export class ProjectService {
  constructor(
    private readonly db: Db,
    private readonly events: EventLog,
    private readonly planLimits: Config['planLimits'],
  ) {}

  async get(actor: Actor): Promise<ProjectModel> {
    const project = await getProject(this.db, actor.projectId);
    if (!project) throw new Error(`project ${actor.projectId} vanished under a live API key`);
    return project;
  }

  async integrationUsage(project: ProjectModel): Promise<IntegrationUsage> {
    return { used: await countIntegrations(this.db, project.id), limit: this.planLimits[project.plan] };
  }

  async update(actor: Actor, input: { name: string }): Promise<ProjectModel> {
    return transact(this.db, async (tx) => {
      const project = await lockProject(tx.trx, actor.projectId);
      const changes = describeChanges({ name: project.name }, input);
      if (changes === null) return project;
      const updated = await updateProject(tx.trx, project.id, { name: input.name });
      await this.events.record(tx, actor, {
        action: 'project.updated',
        resourceType: 'project',
        resourceId: project.id,
        resourceName: updated.name,
        details: changes,
      });
      return updated;
    });
  }
}

