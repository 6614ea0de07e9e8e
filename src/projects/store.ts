import type { Knex } from 'knex';
import { fn } from 'objection';
import type { Plan } from '../config.js';
import type { Db } from '../db/knex.js';
import { ProjectModel } from './model.js';

export async function getProject(db: Db | Knex.Transaction, id: number): Promise<ProjectModel | undefined> {
  return ProjectModel.query(db).findById(id);
}

/**
 * Locks the project row: serialises changes that check a per-project count (last enabled key, plan
 * limit). FOR NO KEY UPDATE, which excludes its like but not the key-share lock of a foreign-key
 * check: the project's event inserts, every change's, go on meanwhile instead of queuing behind it.
 */
export async function lockProject(trx: Knex.Transaction, id: number): Promise<ProjectModel> {
  const project = await ProjectModel.query(trx).findById(id).forNoKeyUpdate();
  if (!project) throw new Error(`project ${id} vanished under a live API key`);
  return project;
}

export async function insertProject(trx: Knex.Transaction, name: string, plan: Plan): Promise<ProjectModel> {
  return ProjectModel.query(trx).insertAndFetch({ name, plan });
}

export async function updateProject(trx: Knex.Transaction, id: number, changes: { name?: string; plan?: Plan }): Promise<ProjectModel> {
  return ProjectModel.query(trx).patchAndFetchById(id, { ...changes, updatedAt: fn.now() });
}
