import type { Knex } from 'knex';
import { fn } from 'objection';
import type { Db } from '../db/knex.js';
import type { Actor } from '../events/actor.js';
import { ApiKeyModel } from './model.js';

type Conn = Db | Knex.Transaction;

/** The actor behind an enabled key with this hash, or undefined. */
export async function findActorByHash(db: Db, secretHash: string): Promise<Actor | undefined> {
  const row = (await db('api_keys as k')
    .join('users as u', 'u.id', 'k.user_id')
    .select('k.id as apiKeyId', 'k.project_id as projectId', 'u.id as userId', 'u.name as userName', 'u.email as userEmail')
    .where({ 'k.secret_hash': secretHash, 'k.enabled': true })
    .first()) as { apiKeyId: number; projectId: number; userId: number; userName: string; userEmail: string } | undefined;
  return row && { apiKeyId: row.apiKeyId, projectId: row.projectId, user: { id: row.userId, name: row.userName, email: row.userEmail } };
}

export async function listApiKeys(db: Conn, projectId: number): Promise<ApiKeyModel[]> {
  return ApiKeyModel.query(db).where('project_id', projectId).orderBy('id');
}

export async function getApiKey(db: Conn, projectId: number, id: number, lock = false): Promise<ApiKeyModel | undefined> {
  const query = ApiKeyModel.query(db).where({ project_id: projectId, id }).first();
  return lock ? query.forUpdate() : query;
}

export async function insertApiKey(trx: Knex.Transaction, key: Pick<ApiKeyModel, 'projectId' | 'userId' | 'environmentId' | 'name' | 'secretHash' | 'tokenPrefix'>): Promise<ApiKeyModel> {
  return ApiKeyModel.query(trx).insertAndFetch(key);
}

export async function updateApiKey(trx: Knex.Transaction, id: number, changes: { name?: string; enabled?: boolean }): Promise<ApiKeyModel> {
  return ApiKeyModel.query(trx).patchAndFetchById(id, { ...changes, updatedAt: fn.now() });
}

export async function deleteApiKey(trx: Knex.Transaction, id: number): Promise<void> {
  await ApiKeyModel.query(trx).deleteById(id);
}

export async function countEnabledKeys(trx: Knex.Transaction, projectId: number): Promise<number> {
  const row = (await trx('api_keys').where({ project_id: projectId, enabled: true }).count({ n: '*' }).first()) as { n: number };
  return row.n;
}

/** Names of the project's API keys scoped to an environment. */
export async function keysScopedTo(trx: Knex.Transaction, environmentId: number): Promise<string[]> {
  const rows = (await trx('api_keys').where('environment_id', environmentId).orderBy('id').select('name')) as Array<{ name: string }>;
  return rows.map((r) => r.name);
}
