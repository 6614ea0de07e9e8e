import type { Db } from '../db/knex.js';
import type { Actor } from './actor.js';
import { listEvents, type EventRecord } from './store.js';

/** The read side of the event log, for `GET /api/v1/events`. */
export class EventQueries {
  constructor(private readonly db: Db) {}

  list(actor: Actor, page: { limit: number; before?: number | undefined }): Promise<EventRecord[]> {
    return listEvents(this.db, actor.projectId, page);
  }
}
