import type { Knex } from 'knex';
import type { Db } from '../db/knex.js';

export interface Strategy {
  /** null until a strategy is first saved for this flag and environment */
  id: number | null;
  flagId: number;
  environmentId: number;
  enabled: boolean;
  rolloutPercentage: number;
  segmentIds: number[];
  updatedAt: Date | null;
}

/** What a flag does in an environment where no strategy was ever saved: off, at full rollout when turned on. */
export function defaultStrategy(flagId: number, environmentId: number): Strategy {
  return { id: null, flagId, environmentId, enabled: false, rolloutPercentage: 100, segmentIds: [], updatedAt: null };
}

export async function getStrategy(db: Db | Knex.Transaction, flagId: number, environmentId: number, lock = false): Promise<Strategy> {
  const query = db('strategies')
    .where({ flag_id: flagId, environment_id: environmentId })
    .select('id', 'enabled', 'rollout_percentage', 'updated_at')
    .first();
  if (lock) query.forUpdate();
  const row = (await query) as { id: number; enabled: boolean; rollout_percentage: number; updated_at: Date } | undefined;
  if (!row) return defaultStrategy(flagId, environmentId);
  const segments = (await db('strategy_segments').where('strategy_id', row.id).orderBy('segment_id').select('segment_id')) as Array<{
    segment_id: number;
  }>;
  return {
    id: row.id,
    flagId,
    environmentId,
    enabled: row.enabled,
    rolloutPercentage: row.rollout_percentage,
    segmentIds: segments.map((s) => s.segment_id),
    updatedAt: row.updated_at,
  };
}

/**
 * Saves over the row `id` when there is one (read under the flag's lock), else inserts it. Not one
 * upsert for both: INSERT … ON CONFLICT takes a sequence number even when it ends up updating, and
 * every changing PUT would use one up (of an int4 sequence shared by every project).
 */
export async function saveStrategy(trx: Knex.Transaction, strategy: Omit<Strategy, 'id' | 'updatedAt'>, id: number | null): Promise<Strategy> {
  const values = { enabled: strategy.enabled, rollout_percentage: strategy.rolloutPercentage };
  const [row] = (
    id !== null
      ? await trx('strategies').where('id', id).update({ ...values, updated_at: trx.fn.now() }).returning(['id', 'updated_at'])
      : await trx('strategies')
          .insert({ flag_id: strategy.flagId, environment_id: strategy.environmentId, ...values })
          .onConflict(['flag_id', 'environment_id'])
          .merge({ ...values, updated_at: trx.fn.now() })
          .returning(['id', 'updated_at'])
  ) as Array<{ id: number; updated_at: Date }>;
  await trx('strategy_segments').where('strategy_id', row!.id).delete();
  if (strategy.segmentIds.length > 0) {
    await trx('strategy_segments').insert(strategy.segmentIds.map((segmentId) => ({ strategy_id: row!.id, segment_id: segmentId })));
  }
  return { id: row!.id, ...strategy, updatedAt: row!.updated_at };
}
