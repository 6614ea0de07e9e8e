import type { Knex } from 'knex';
import { intArrayLiteral, type Db } from '../db/knex.js';
import type { Actor } from './actor.js';
import type { EventCode, ResourceType } from './codes.js';
import type { EventVariables } from './variables.js';

export interface NewEvent {
  action: EventCode;
  resourceType: ResourceType;
  resourceId: number;
  resourceName: string;
  details: string;
}

export interface EventRecord extends EventVariables {
  id: number;
  queued: boolean;
  queuedAt: string | null;
}

interface EventRow {
  id: number;
  project_id: number;
  action: string;
  resource_type: string;
  resource_id: number;
  resource_name: string;
  details: string;
  user_id: number;
  user_name: string;
  user_email: string;
  created_at: Date;
  queued_at: Date | null;
}

export async function insertEvent(trx: Knex.Transaction, actor: Actor, event: NewEvent): Promise<number> {
  const [row] = (await trx('events')
    .insert({
      project_id: actor.projectId,
      action: event.action,
      resource_type: event.resourceType,
      resource_id: event.resourceId,
      resource_name: event.resourceName,
      details: event.details,
      user_id: actor.user.id,
      user_name: actor.user.name,
      user_email: actor.user.email,
      // When the row is written, after the change's locks were taken, not when its transaction began
      // (now()): two changes to one resource, the second waiting for the first, get their times in
      // the order they commit, which a receiver keeping the newest by `events.timestamp` relies on.
      created_at: trx.raw('clock_timestamp()'),
    })
    .returning('id')) as Array<{ id: number }>;
  return row!.id;
}

/**
 * Up to `limit` committed events not queued yet, oldest first, marked queued in the same statement
 * (the mark counts once the caller's transaction commits, after their jobs are added); rows another
 * relay holds are skipped.
 */
export async function claimUnqueuedEvents(trx: Knex.Transaction, limit: number): Promise<EventRow[]> {
  const { rows } = (await trx.raw(
    `UPDATE events SET queued_at = now()
      WHERE id IN (SELECT id FROM events WHERE queued_at IS NULL ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED)
      RETURNING *`,
    [limit],
  )) as { rows: EventRow[] };
  return rows.sort((a, b) => a.id - b.id);
}

/**
 * A page of the project's events, newest first, read along the (project_id, id) index. Asked as
 * `project_id = $1 ORDER BY id`, the planner may walk the primary key backwards instead, filtering
 * by project: for a big project quiet for a while that skips every newer event of every other
 * project (288 ms past 2M rows here, for 50 events). Written as `= ANY` and ordered by both
 * columns, the order only that index has, it is the index (0.1 ms).
 */
export async function listEvents(db: Db, projectId: number, page: { limit: number; before?: number | undefined }): Promise<EventRecord[]> {
  const query = db<EventRow>('events')
    .whereRaw('project_id = ANY(?::int[])', [intArrayLiteral([projectId])])
    .orderBy([
      { column: 'project_id', order: 'desc' },
      { column: 'id', order: 'desc' },
    ])
    .limit(page.limit);
  if (page.before !== undefined) query.where('id', '<', page.before);
  return (await query).map(toEventRecord);
}

export function eventVariables(row: EventRow): EventVariables {
  return {
    action: row.action,
    resourceType: row.resource_type,
    resourceId: row.resource_id,
    resourceName: row.resource_name,
    details: row.details,
    projectId: row.project_id,
    user: { id: row.user_id, name: row.user_name, email: row.user_email },
    timestamp: row.created_at.toISOString(),
  };
}

function toEventRecord(row: EventRow): EventRecord {
  return { id: row.id, ...eventVariables(row), queued: row.queued_at !== null, queuedAt: row.queued_at?.toISOString() ?? null };
}

export type { EventRow };

/** Seconds since the oldest committed event whose queueing has not committed yet; 0 when none waits. */
export async function unqueuedAgeSeconds(db: Db): Promise<number> {
  const row = (await unqueuedAgeQuery(db)) as { age: number } | undefined;
  return row?.age ?? 0;
}

/**
 * The first unqueued event by id, not min(created_at): only this shape always walks the partial
 * index of unqueued events. With statistics taken while many waited (a Redis outage), min()
 * scanned the whole table on every scrape. Ids follow commit order closely enough for a gauge.
 */
export function unqueuedAgeQuery(db: Db) {
  return db('events')
    .whereNull('queued_at')
    .orderBy('id')
    .first(db.raw('greatest(extract(epoch from now() - created_at), 0)::float8 as age'));
}
