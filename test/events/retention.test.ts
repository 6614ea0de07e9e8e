import { afterAll, beforeAll, expect, it } from 'vitest';
import { createDb, type Db } from '../../src/db/knex.js';
import { EVENT_RETENTION_LOCK, EventRetention } from '../../src/events/retention.js';
import { createLogger } from '../../src/logger.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

let database: TestDatabase;
let db: Db;
let projectId: number;
beforeAll(async () => {
  database = await createTestDatabase();
  db = createDb(database.url);
  projectId = ((await db('projects').insert({ name: 'retention', plan: 'free' }).returning('id'))[0] as { id: number }).id;
});
afterAll(async () => {
  await db?.destroy();
  await database?.drop();
});

/** Inserts events in this order, each `daysOld` days old, queued or not; answers their ids. */
async function insertEvents(specs: Array<{ daysOld: number; queued: boolean }>): Promise<number[]> {
  const ids: number[] = [];
  for (const { daysOld, queued } of specs) {
    const [row] = await db('events')
      .insert({
        project_id: projectId,
        action: 'flag.updated',
        resource_type: 'flag',
        resource_id: 1,
        resource_name: 'f',
        details: '',
        user_id: 1,
        user_name: 'u',
        user_email: 'u@example.com',
        created_at: db.raw(`now() - make_interval(days => ?)`, [daysOld]),
        queued_at: queued ? db.fn.now() : null,
      })
      .returning('id');
    ids.push(Number((row as { id: number | string }).id));
  }
  return ids;
}

const remaining = async () => ((await db('events').orderBy('id').pluck('id')) as Array<number | string>).map(Number);

it('deletes queued events older than the retention, never one the relay has not queued, oldest first in small batches', async () => {
  await db('events').delete();
  const ids = await insertEvents([
    { daysOld: 40, queued: true },
    { daysOld: 40, queued: true },
    { daysOld: 35, queued: true },
    { daysOld: 35, queued: false }, // waiting for Redis since: kept, it has not been delivered
    { daysOld: 29, queued: true },
    { daysOld: 1, queued: true },
  ]);
  const retention = new EventRetention(db, createLogger('silent'), { days: 30, batch: 2 });
  expect(await retention.runOnce()).toBe(3);
  expect(await remaining()).toEqual(ids.slice(3));
  expect(await retention.runOnce()).toBe(0);
  await retention.stop();
});

it('leaves the table to the worker holding the lock', async () => {
  await db('events').delete();
  const ids = await insertEvents([{ daysOld: 90, queued: true }]);
  const other = createDb(database.url, { poolMax: 1 }); // one session: the lock is held by it
  try {
    await other.raw('SELECT pg_advisory_lock(?)', [EVENT_RETENTION_LOCK]);
    const retention = new EventRetention(db, createLogger('silent'), { days: 30 });
    expect(await retention.runOnce()).toBe(0);
    expect(await remaining()).toEqual(ids);
    await other.raw('SELECT pg_advisory_unlock(?)', [EVENT_RETENTION_LOCK]);
    expect(await retention.runOnce()).toBe(1);
    expect(await remaining()).toEqual([]);
    await retention.stop();
  } finally {
    await other.destroy();
  }
});
