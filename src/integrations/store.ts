import type { Knex } from 'knex';
import type { Db } from '../db/knex.js';
import { ProjectScopedStore } from '../db/project-scoped-store.js';
import type { DeliveryTarget } from '../delivery/integration-loader.js';
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

/** What the relay matches events against: the enabled integrations of these projects. */
export async function enabledIntegrationsOf(
  trx: Knex.Transaction,
  projectIds: readonly number[],
): Promise<Array<{ id: number; project_id: number; events: string[]; version: number }>> {
  return trx('integrations').whereIn('project_id', projectIds).andWhere('enabled', true).select('id', 'project_id', 'events', 'version');
}

/**
 * What a worker needs of these integrations to deliver to them (see DeliveryTarget). A rotation's
 * previous secret only while it still signs: expiry is judged at the read, so a cached copy signs
 * with it for at most the cache's ttl longer.
 */
export async function deliveryTargets(db: Db, ids: readonly number[]): Promise<DeliveryTarget[]> {
  return db('integrations')
    .whereIn('id', ids)
    .select('id', 'version', 'enabled', 'url', 'headers', 'body_template as bodyTemplate', 'secret', 'events')
    .select(db.raw('CASE WHEN previous_secret_expires_at > now() THEN previous_secret END AS "previousSecret"'));
}
