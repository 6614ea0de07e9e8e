import { insertNewKey, keyCreated } from '../apikeys/service.js';
import type { Plan } from '../config.js';
import type { Db } from '../db/knex.js';
import { transact } from '../db/transaction.js';
import type { EventLog } from '../events/event-log.js';
import { findOrCreateUser } from '../users/store.js';
import { getProject, insertProject, updateProject } from './store.js';

export interface BootstrapInput {
  project: string;
  email: string;
  name?: string | undefined;
  plan: Plan;
}

export interface BootstrapResult {
  projectId: number;
  userId: number;
  apiKeyId: number;
  token: string;
}

/** SPEC §2: a new project, its user (found by email or created) and a first API key, in one transaction. */
export async function bootstrap(db: Db, input: BootstrapInput): Promise<BootstrapResult> {
  return transact(db, async ({ trx }) => {
    const { user } = await findOrCreateUser(trx, input.email, input.name);
    const project = await insertProject(trx, input.project, input.plan);
    const { key, token } = await insertNewKey(trx, { projectId: project.id, userId: user.id, environmentId: null, name: 'bootstrap' });
    return { projectId: project.id, userId: user.id, apiKeyId: key.id, token };
  });
}

/** What an operator's key is called in the project's key list. */
export const OPERATOR_KEY_NAME = 'operator';

/**
 * An operator's way back into an existing project — its keys lost, or disabled by whoever held one
 * (every key may disable the others): a new key of all environments for a user (found by email or
 * created), as `bootstrap` gives one. Recorded as `apikey.created`, so the project's webhooks hear of
 * it. Null when there is no such project.
 */
export async function createKey(
  db: Db,
  events: EventLog,
  input: { projectId: number; email: string; name?: string | undefined },
): Promise<BootstrapResult | null> {
  return transact(db, async (tx) => {
    if (!(await getProject(tx.trx, input.projectId))) return null;
    const { user } = await findOrCreateUser(tx.trx, input.email, input.name);
    const { key, token } = await insertNewKey(tx.trx, { projectId: input.projectId, userId: user.id, environmentId: null, name: OPERATOR_KEY_NAME });
    await events.record(tx, { projectId: input.projectId, apiKeyId: key.id, user }, keyCreated(key, 'all environments', ' with the operator command create-key'));
    return { projectId: input.projectId, userId: user.id, apiKeyId: key.id, token };
  });
}

/** Plans are the operator's to change (billing lives elsewhere), so this is a CLI command, not an API. */
export async function setPlan(db: Db, projectId: number, plan: Plan): Promise<{ projectId: number; plan: Plan } | null> {
  return transact(db, async ({ trx }) => {
    if (!(await getProject(trx, projectId))) return null;
    const project = await updateProject(trx, projectId, { plan });
    return { projectId: project.id, plan: project.plan };
  });
}
