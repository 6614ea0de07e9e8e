import type { Knex } from 'knex';
import type { Db } from '../db/knex.js';
import { ProjectScopedStore } from '../db/project-scoped-store.js';
import { IntegrationModel } from './model.js';

/**
 * An integration's last delivery is its newest deliveries row (the attempt that finished last,
 * whichever worker saved it first), read alongside it, so recording a successful delivery writes
 * that row and nothing else.
 */
export const integrationStore = new ProjectScopedStore<IntegrationModel>(IntegrationModel, (query) =>
  query
    .select('integrations.*', 'last_delivery.last_delivery_at', 'last_delivery.last_delivery_status')
    .joinRaw(
      `LEFT JOIN LATERAL (SELECT created_at AS last_delivery_at, status AS last_delivery_status FROM deliveries
                           WHERE deliveries.integration_id = integrations.id
                          ORDER BY deliveries.created_at DESC, deliveries.id DESC LIMIT 1) AS last_delivery ON true`,
    ),
);

export async function countIntegrations(db: Db | Knex.Transaction, projectId: number): Promise<number> {
  const row = (await db('integrations').where('project_id', projectId).count({ n: '*' }).first()) as { n: number };
  return row.n;
}
