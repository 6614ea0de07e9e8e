import type { TestApi } from './api.js';

/** The project's event rows straight from the table, oldest first. */
export async function eventRows(api: TestApi, projectId: number): Promise<any[]> {
  return api.server.db('events').where('project_id', projectId).orderBy('id');
}

/** Runs `change` and returns the event rows it added to the project. */
export async function eventsDuring(api: TestApi, projectId: number, change: () => Promise<unknown>): Promise<any[]> {
  const before = await eventRows(api, projectId);
  await change();
  const after = await eventRows(api, projectId);
  return after.slice(before.length);
}
