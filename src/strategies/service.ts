import type { Db } from '../db/knex.js';
import { transact } from '../db/transaction.js';
import { environmentStore } from '../environments/store.js';
import type { Actor } from '../events/actor.js';
import { describeChanges } from '../events/details.js';
import type { EventLog } from '../events/event-log.js';
import { flagStore } from '../flags/store.js';
import { notFound, validationFailed } from '../http/errors.js';
import { existingSegmentIds } from '../segments/store.js';
import { getStrategy, saveStrategy, type Strategy } from './store.js';

export interface StrategyInput {
  enabled: boolean;
  rolloutPercentage: number;
  segmentIds?: number[];
}

export class StrategyService {
  constructor(
    private readonly db: Db,
    private readonly events: EventLog,
  ) {}

  async get(actor: Actor, flagId: number, environmentId: number): Promise<Strategy> {
    const [flag, env] = await Promise.all([
      flagStore.get(this.db, actor.projectId, flagId),
      environmentStore.get(this.db, actor.projectId, environmentId),
    ]);
    if (!flag) throw notFound('flag');
    if (!env) throw notFound('environment');
    return getStrategy(this.db, flagId, environmentId);
  }

  /** Compared with what is in force (the default when nothing was saved): the same values fire nothing. */
  async put(actor: Actor, flagId: number, environmentId: number, input: StrategyInput): Promise<Strategy> {
    return transact(this.db, async (tx) => {
      // Locking the flag serialises concurrent saves of its strategies.
      const flag = await flagStore.lock(tx.trx, actor.projectId, flagId);
      if (!flag) throw notFound('flag');
      // Kept until COMMIT: an environment deleted meanwhile is a 404 here, not a save "with no change".
      const env = await environmentStore.keep(tx.trx, actor.projectId, environmentId);
      if (!env) throw notFound('environment');

      const current = await getStrategy(tx.trx, flagId, environmentId, true);
      // Like every PUT of the API, leaving segmentIds out keeps the segments in force.
      const segmentIds = input.segmentIds ? [...input.segmentIds].sort((a, b) => a - b) : current.segmentIds;
      const known = await existingSegmentIds(tx.trx, actor.projectId, input.segmentIds ?? []);
      const unknown = (input.segmentIds ?? []).flatMap((id, i) => (known.has(id) ? [] : [{ path: `segmentIds[${i}]`, message: `segment ${id} does not exist in this project` }]));
      if (unknown.length > 0) throw validationFailed(unknown);

      const next = { enabled: input.enabled, rolloutPercentage: input.rolloutPercentage, segmentIds };
      const changes = describeChanges(
        { enabled: current.enabled, rolloutPercentage: current.rolloutPercentage, segmentIds: current.segmentIds },
        next,
      );
      if (changes === null) return current;
      const saved = await saveStrategy(tx.trx, { flagId, environmentId, ...next }, current.id);
      await this.events.record(tx, actor, {
        action: 'strategy.updated',
        resourceType: 'strategy',
        resourceId: saved.id!,
        resourceName: `${flag.key}/${env.key}`,
        details: changes,
      });
      return saved;
    });
  }
}
