import type { Db } from '../db/knex.js';
import { uniqueViolationAs } from '../db/errors.js';
import { transact } from '../db/transaction.js';
import type { Actor } from '../events/actor.js';
import { describeChanges, describeFields, formatValue } from '../events/details.js';
import type { EventLog } from '../events/event-log.js';
import { conflict, notFound, validationFailed } from '../http/errors.js';
import { keysScopedTo } from '../apikeys/store.js';
import type { EnvironmentModel } from './model.js';
import { environmentStore as store } from './store.js';

export interface EnvironmentInput {
  key: string;
  name: string;
}

const keyTaken = (key: string) => conflict(`an environment with key "${key}" already exists in this project`);

export class EnvironmentService {
  constructor(
    private readonly db: Db,
    private readonly events: EventLog,
  ) {}

  list(actor: Actor): Promise<EnvironmentModel[]> {
    return store.list(this.db, actor.projectId);
  }

  async get(actor: Actor, id: number): Promise<EnvironmentModel> {
    return (await store.get(this.db, actor.projectId, id)) ?? notFoundError();
  }

  async create(actor: Actor, input: EnvironmentInput): Promise<EnvironmentModel> {
    try {
      return await transact(this.db, async (tx) => {
        const env = await store.insert(tx.trx, { projectId: actor.projectId, key: input.key, name: input.name });
        await this.events.record(tx, actor, {
          action: 'environment.created',
          resourceType: 'environment',
          resourceId: env.id,
          resourceName: env.key,
          details: `created environment ${formatValue(env.key)} (${describeFields({ name: env.name })})`,
        });
        return env;
      });
    } catch (err) {
      throw uniqueViolationAs(err, keyTaken(input.key));
    }
  }

  /** The key is fixed once created: sending another one is a validation error, not a rename. */
  async update(actor: Actor, id: number, input: Partial<EnvironmentInput>): Promise<EnvironmentModel> {
    return transact(this.db, async (tx) => {
      const env = (await store.lock(tx.trx, actor.projectId, id)) ?? notFoundError();
      if (input.key !== undefined && input.key !== env.key) {
        throw validationFailed([{ path: 'key', message: `key cannot change after creation (it is "${env.key}")` }]);
      }
      const changes = describeChanges({ name: env.name }, { name: input.name });
      if (changes === null) return env;
      const updated = await store.patch(tx.trx, env, { name: input.name });
      await this.events.record(tx, actor, {
        action: 'environment.updated',
        resourceType: 'environment',
        resourceId: env.id,
        resourceName: env.key,
        details: changes,
      });
      return updated;
    });
  }

  async remove(actor: Actor, id: number): Promise<void> {
    await transact(this.db, async (tx) => {
      const env = (await store.lockForDelete(tx.trx, actor.projectId, id)) ?? notFoundError();
      // Their scope would fall back to null, every environment, without a word: the keys go first.
      const scoped = await keysScopedTo(tx.trx, env.id);
      if (scoped.length > 0) {
        throw conflict(`environment "${env.key}" has API keys scoped to it (${scoped.map((name) => `"${name}"`).join(', ')}); delete them first`);
      }
      await store.delete(tx.trx, env);
      await this.events.record(tx, actor, {
        action: 'environment.deleted',
        resourceType: 'environment',
        resourceId: env.id,
        resourceName: env.key,
        details: `deleted environment ${formatValue(env.key)}`,
      });
    });
  }
}

function notFoundError(): never {
  throw notFound('environment');
}
