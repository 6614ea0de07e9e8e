import { fn } from 'objection';
import type { Db } from '../db/knex.js';
import { uniqueViolationAs } from '../db/errors.js';
import { transact, type Tx } from '../db/transaction.js';
import type { Actor } from '../events/actor.js';
import type { EventCode } from '../events/codes.js';
import { describeChanges, describeFields } from '../events/details.js';
import type { EventLog } from '../events/event-log.js';
import { conflict, notFound } from '../http/errors.js';
import type { FlagModel } from './model.js';
import { flagStore as store } from './store.js';

export interface FlagInput {
  key: string;
  name: string;
  description?: string;
}

const keyTaken = (key: string) => conflict(`a flag with key "${key}" already exists in this project`);

export class FlagService {
  constructor(
    private readonly db: Db,
    private readonly events: EventLog,
  ) {}

  /** Active flags, or only archived ones. */
  list(actor: Actor, archived: boolean): Promise<FlagModel[]> {
    return store.list(this.db, actor.projectId, (query) =>
      archived ? query.whereNotNull('archived_at') : query.whereNull('archived_at'),
    );
  }

  async get(actor: Actor, id: number): Promise<FlagModel> {
    return (await store.get(this.db, actor.projectId, id)) ?? notFoundError();
  }

  async create(actor: Actor, input: FlagInput): Promise<FlagModel> {
    try {
      return await transact(this.db, async (tx) => {
        const flag = await store.insert(tx.trx, {
          projectId: actor.projectId,
          key: input.key,
          name: input.name,
          description: input.description ?? '',
        });
        const fields = describeFields({ name: flag.name, ...(flag.description ? { description: flag.description } : {}) });
        await this.record(tx, actor, 'flag.created', flag, `created flag "${flag.key}" (${fields})`);
        return flag;
      });
    } catch (err) {
      throw uniqueViolationAs(err, keyTaken(input.key));
    }
  }

  /** Fields left out keep their value; the key may change (a rename) while no other flag holds the new one. */
  async update(actor: Actor, id: number, input: Partial<FlagInput>): Promise<FlagModel> {
    try {
      return await transact(this.db, async (tx) => {
        const flag = (await store.lock(tx.trx, actor.projectId, id)) ?? notFoundError();
        const before = { key: flag.key, name: flag.name, description: flag.description };
        const after = { key: input.key ?? flag.key, name: input.name ?? flag.name, description: input.description ?? flag.description };
        const changes = describeChanges(before, after);
        if (changes === null) return flag;
        const updated = await store.patch(tx.trx, flag, after);
        await this.record(tx, actor, 'flag.updated', updated, changes);
        return updated;
      });
    } catch (err) {
      throw uniqueViolationAs(err, keyTaken(input.key ?? ''));
    }
  }

  async remove(actor: Actor, id: number): Promise<void> {
    await transact(this.db, async (tx) => {
      const flag = (await store.lockForDelete(tx.trx, actor.projectId, id)) ?? notFoundError();
      await store.delete(tx.trx, flag);
      await this.record(tx, actor, 'flag.deleted', flag, `deleted flag "${flag.key}"`);
    });
  }

  /** Archiving an archived flag (or restoring an active one) changes nothing and fires nothing. */
  async setArchived(actor: Actor, id: number, archived: boolean): Promise<FlagModel> {
    return transact(this.db, async (tx) => {
      const flag = (await store.lock(tx.trx, actor.projectId, id)) ?? notFoundError();
      if ((flag.archivedAt !== null) === archived) return flag;
      const updated = await store.patch(tx.trx, flag, { archivedAt: archived ? fn.now() : null });
      const action = archived ? 'flag.archived' : 'flag.unarchived';
      await this.record(tx, actor, action, updated, `${archived ? 'archived' : 'restored'} flag "${flag.key}"`);
      return updated;
    });
  }

  private record(tx: Tx, actor: Actor, action: EventCode, flag: FlagModel, details: string): Promise<number> {
    return this.events.record(tx, actor, { action, resourceType: 'flag', resourceId: flag.id, resourceName: flag.key, details });
  }
}

function notFoundError(): never {
  throw notFound('flag');
}
