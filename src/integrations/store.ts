import type { Knex } from 'knex';
import type { Db } from '../db/knex.js';
import { ProjectScopedStore } from '../db/project-scoped-store.js';
import { IntegrationModel } from './model.js';

export const integrationStore = new ProjectScopedStore<IntegrationModel>(IntegrationModel);

export async function countIntegrations(db: Db | Knex.Transaction, projectId: number): Promise<number> {
  const row = (await db('integrations').where('project_id', projectId).count({ n: '*' }).first()) as { n: number };
  return row.n;
}
