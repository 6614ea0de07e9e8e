import { afterAll, beforeAll, expect, it } from 'vitest';
import { createDb, type Db } from '../../src/db/knex.js';
import { unqueuedAgeQuery, unqueuedAgeSeconds } from '../../src/events/store.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

let database: TestDatabase;
let db: Db;
beforeAll(async () => {
  database = await createTestDatabase();
  db = createDb(database.url);
  const [project] = await db('projects').insert({ name: 'lag', plan: 'free' }).returning('id');
  // 200 000 events a second apart, the newest now; every third one not queued yet, the oldest of
  // those (g = 3) 199 997 s old. A third unqueued: statistics a Redis outage could leave behind.
  await db.raw(
    `INSERT INTO events (project_id, action, resource_type, resource_id, resource_name, details, user_id, user_name, user_email, created_at, queued_at)
     SELECT ?, 'flag.updated', 'flag', 1, 'f', '', 1, 'u', 'u@example.com', now() - (200000 - g) * interval '1 second',
            CASE WHEN g % 3 = 0 THEN NULL ELSE now() END
       FROM generate_series(1, 200000) g`,
    [(project as { id: number }).id],
  );
  await db.raw('ANALYZE events');
});
afterAll(async () => {
  await db?.destroy();
  await database?.drop();
});

it('measures the lag from the oldest event not queued yet', async () => {
  const age = await unqueuedAgeSeconds(db);
  expect(age).toBeGreaterThanOrEqual(199_997);
  expect(age).toBeLessThan(199_997 + 600);
});

it('reads one entry of the partial index of unqueued events, not every unqueued event nor the table', async () => {
  const explained = await db.raw(`EXPLAIN (ANALYZE, FORMAT JSON) ${unqueuedAgeQuery(db).toString()}`);
  const scans: Array<{ 'Node Type': string; 'Relation Name'?: string; 'Index Name'?: string; 'Actual Rows': number }> = [];
  const walk = (node: any): void => {
    if (node['Relation Name'] === 'events') scans.push(node);
    for (const child of node.Plans ?? []) walk(child);
  };
  walk(explained.rows[0]['QUERY PLAN'][0].Plan);
  expect(scans).toEqual([expect.objectContaining({ 'Index Name': 'events_unqueued_index', 'Actual Rows': 1 })]);
});

it('is 0 when every event is queued', async () => {
  await db('events').whereNull('queued_at').update({ queued_at: db.fn.now() });
  expect(await unqueuedAgeSeconds(db)).toBe(0);
});
