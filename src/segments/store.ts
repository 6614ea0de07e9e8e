import type { Knex } from 'knex';
import { ProjectScopedStore } from '../db/project-scoped-store.js';
import { SegmentModel } from './model.js';

export const segmentStore = new ProjectScopedStore<SegmentModel>(SegmentModel);

/** `flag/environment` of every strategy that uses the segment, to explain why it cannot be deleted. */
export async function strategiesUsingSegment(trx: Knex.Transaction, segmentId: number): Promise<string[]> {
  const rows = (await trx('strategy_segments as ss')
    .join('strategies as s', 's.id', 'ss.strategy_id')
    .join('flags as f', 'f.id', 's.flag_id')
    .join('environments as e', 'e.id', 's.environment_id')
    .where('ss.segment_id', segmentId)
    .orderBy(['f.key', 'e.key'])
    .select('f.key as flag', 'e.key as environment')) as Array<{ flag: string; environment: string }>;
  return rows.map((r) => `${r.flag}/${r.environment}`);
}

/** Which of these ids are segments of the project. */
export async function existingSegmentIds(trx: Knex.Transaction, projectId: number, ids: number[]): Promise<Set<number>> {
  if (ids.length === 0) return new Set();
  const rows = (await trx('segments').where('project_id', projectId).whereIn('id', ids).select('id')) as Array<{ id: number }>;
  return new Set(rows.map((r) => r.id));
}
