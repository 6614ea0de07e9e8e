import type { Knex } from 'knex';
import type { Db } from '../db/knex.js';
import { transact } from '../db/transaction.js';
import { environmentStore } from '../environments/store.js';
import type { Actor } from '../events/actor.js';
import { describeChanges, describeFields, formatValue } from '../events/details.js';
import type { EventLog } from '../events/event-log.js';
import type { NewEvent } from '../events/store.js';
import { conflict, notFound, validationFailed } from '../http/errors.js';
import { lockProject } from '../projects/store.js';
import type { ApiKeyModel } from './model.js';
import * as store from './store.js';
import { generateToken, hashToken, looksLikeToken, tokenPrefix } from './tokens.js';

export interface CreatedApiKey {
  key: ApiKeyModel;
  /** Shown once, in the answer to the create request; only its hash is stored. */
  token: string;
}

/** A new key of a project: a fresh token (shown once), only its hash stored. */
export async function insertNewKey(
  trx: Knex.Transaction,
  key: { projectId: number; userId: number; environmentId: number | null; name: string },
): Promise<CreatedApiKey> {
  const token = generateToken();
  const inserted = await store.insertApiKey(trx, { ...key, secretHash: hashToken(token), tokenPrefix: tokenPrefix(token) });
  return { key: inserted, token };
}

/** The `apikey.created` event of a key; `how`, when not made through the API, says how. */
export function keyCreated(key: ApiKeyModel, scope: string, how = ''): NewEvent {
  return {
    action: 'apikey.created',
    resourceType: 'apikey',
    resourceId: key.id,
    resourceName: key.name,
    details: `created API key ${formatValue(key.name)} (${describeFields({ enabled: true })}, for ${scope})${how}`,
  };
}

export class ApiKeyService {
  constructor(
    private readonly db: Db,
    private readonly events: EventLog,
  ) {}

  async authenticate(token: string): Promise<Actor | undefined> {
    if (!looksLikeToken(token)) return undefined;
    return store.findActorByHash(this.db, hashToken(token));
  }

  list(actor: Actor): Promise<ApiKeyModel[]> {
    return store.listApiKeys(this.db, actor.projectId);
  }

  async get(actor: Actor, id: number): Promise<ApiKeyModel> {
    return (await store.getApiKey(this.db, actor.projectId, id)) ?? notFoundError();
  }

  async create(actor: Actor, input: { name: string; environmentId?: number | null }): Promise<CreatedApiKey> {
    return transact(this.db, async (tx) => {
      const environmentId = input.environmentId ?? null;
      let scope = 'all environments';
      if (environmentId !== null) {
        const env = await environmentStore.get(tx.trx, actor.projectId, environmentId);
        if (!env) throw validationFailed([{ path: 'environmentId', message: `environment ${environmentId} does not exist in this project` }]);
        scope = `environment "${env.key}"`;
      }
      const created = await insertNewKey(tx.trx, { projectId: actor.projectId, userId: actor.user.id, environmentId, name: input.name });
      await this.events.record(tx, actor, keyCreated(created.key, scope));
      return created;
    });
  }

  async update(actor: Actor, id: number, input: { name?: string; enabled?: boolean }): Promise<ApiKeyModel> {
    return transact(this.db, async (tx) => {
      await lockProject(tx.trx, actor.projectId);
      const key = (await store.getApiKey(tx.trx, actor.projectId, id, true)) ?? notFoundError();
      const changes = describeChanges({ name: key.name, enabled: key.enabled }, input);
      if (changes === null) return key;
      if (key.enabled && input.enabled === false) await this.keepOneEnabled(tx.trx, actor.projectId, 'disable');
      const updated = await store.updateApiKey(tx.trx, key.id, input);
      await this.events.record(tx, actor, {
        action: 'apikey.updated',
        resourceType: 'apikey',
        resourceId: key.id,
        resourceName: updated.name,
        details: changes,
      });
      return updated;
    });
  }

  async remove(actor: Actor, id: number): Promise<void> {
    await transact(this.db, async (tx) => {
      await lockProject(tx.trx, actor.projectId);
      const key = (await store.getApiKey(tx.trx, actor.projectId, id, true)) ?? notFoundError();
      if (key.enabled) await this.keepOneEnabled(tx.trx, actor.projectId, 'delete');
      await store.deleteApiKey(tx.trx, key.id);
      await this.events.record(tx, actor, {
        action: 'apikey.deleted',
        resourceType: 'apikey',
        resourceId: key.id,
        resourceName: key.name,
        details: `deleted API key ${formatValue(key.name)}`,
      });
    });
  }

  /** A project always keeps one enabled key, or nobody could manage it any more. The project row lock makes this race-free. */
  private async keepOneEnabled(trx: Parameters<typeof store.countEnabledKeys>[0], projectId: number, verb: string): Promise<void> {
    if ((await store.countEnabledKeys(trx, projectId)) <= 1) {
      throw conflict(`cannot ${verb} the last enabled API key of the project; create another key first`);
    }
  }
}

function notFoundError(): never {
  throw notFound('API key');
}
