import type { Db } from '../db/knex.js';
import { PG_FOREIGN_KEY_VIOLATION, pgErrorCode, uniqueViolationAs } from '../db/errors.js';
import { transact, type Tx } from '../db/transaction.js';
import type { Actor } from '../events/actor.js';
import type { EventCode } from '../events/codes.js';
import { describeChanges, describeFields } from '../events/details.js';
import type { EventLog } from '../events/event-log.js';
import { conflict, notFound } from '../http/errors.js';
import type { Condition, SegmentModel } from './model.js';
import { segmentStore as store, strategiesUsingSegment } from './store.js';

export interface SegmentInput {
  key: string;
  name: string;
  conditions: Condition[];
}

const keyTaken = (key: string) => conflict(`a segment with key "${key}" already exists in this project`);

export class SegmentService {
  constructor(
    private readonly db: Db,
    private readonly events: EventLog,
  ) {}

  list(actor: Actor): Promise<SegmentModel[]> {
    return store.list(this.db, actor.projectId);
  }

  async get(actor: Actor, id: number): Promise<SegmentModel> {
    return (await store.get(this.db, actor.projectId, id)) ?? notFoundError();
  }

  async create(actor: Actor, input: SegmentInput): Promise<SegmentModel> {
    try {
      return await transact(this.db, async (tx) => {
        const segment = await store.insert(tx.trx, { projectId: actor.projectId, ...input });
        const fields = describeFields({ name: segment.name, conditions: segment.conditions });
        await this.record(tx, actor, 'segment.created', segment, `created segment "${segment.key}" (${fields})`);
        return segment;
      });
    } catch (err) {
      throw uniqueViolationAs(err, keyTaken(input.key));
    }
  }

  /** Fields left out keep their value; the key may change while no other segment holds the new one. */
  async update(actor: Actor, id: number, input: Partial<SegmentInput>): Promise<SegmentModel> {
    try {
      return await transact(this.db, async (tx) => {
        const segment = (await store.lock(tx.trx, actor.projectId, id)) ?? notFoundError();
        const before = { key: segment.key, name: segment.name, conditions: segment.conditions };
        const after = {
          key: input.key ?? segment.key,
          name: input.name ?? segment.name,
          conditions: input.conditions ?? segment.conditions,
        };
        const changes = describeChanges(before, after);
        if (changes === null) return segment;
        const updated = await store.patch(tx.trx, segment, after);
        await this.record(tx, actor, 'segment.updated', updated, changes);
        return updated;
      });
    } catch (err) {
      throw uniqueViolationAs(err, keyTaken(input.key ?? ''));
    }
  }

  /** A segment that strategies use cannot be deleted: the answer names them. */
  async remove(actor: Actor, id: number): Promise<void> {
    try {
      await this.removeUnused(actor, id);
    } catch (err) {
      // A strategy took the segment up between the check and the delete.
      if (pgErrorCode(err) === PG_FOREIGN_KEY_VIOLATION) throw conflict('segment is used by a strategy; remove it from the strategy first');
      throw err;
    }
  }

  private async removeUnused(actor: Actor, id: number): Promise<void> {
    await transact(this.db, async (tx) => {
      const segment = (await store.lockForDelete(tx.trx, actor.projectId, id)) ?? notFoundError();
      const users = await strategiesUsingSegment(tx.trx, segment.id);
      if (users.length > 0) {
        throw conflict(`segment "${segment.key}" is used by the strategies of ${users.join(', ')}; remove it from them first`);
      }
      await store.delete(tx.trx, segment);
      await this.record(tx, actor, 'segment.deleted', segment, `deleted segment "${segment.key}"`);
    });
  }

  private record(tx: Tx, actor: Actor, action: EventCode, segment: SegmentModel, details: string): Promise<number> {
    return this.events.record(tx, actor, { action, resourceType: 'segment', resourceId: segment.id, resourceName: segment.key, details });
  }
}

function notFoundError(): never {
  throw notFound('segment');
}
