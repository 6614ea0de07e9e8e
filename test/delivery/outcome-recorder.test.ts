import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeliveryResult } from '../../src/delivery/http-client.js';
import { OutcomeRecorder, PRUNE_RETENTION, pruneBindings, type DeliveryOutcome } from '../../src/delivery/outcome-recorder.js';
import { recordedPairs } from '../../src/delivery/deliveries-store.js';
import { createLogger } from '../../src/logger.js';
import { startTestApi, type TestApi } from '../support/api.js';

let api: TestApi;
let recorder: OutcomeRecorder;
let kept: number;
let gone: number;

const success: DeliveryResult = { ok: true, httpStatus: 200, errorCode: null, error: null, address: '127.0.0.1', durationMs: 3, responseExcerpt: 'ok' };
const failure: DeliveryResult = { ok: false, httpStatus: 500, errorCode: 'E_HTTP', error: 'HTTP 500', address: '127.0.0.1', durationMs: 4, responseExcerpt: 'no' };

function outcome(integrationId: number, eventId: number, result: DeliveryResult): DeliveryOutcome {
  return { integrationId, eventId, webhookId: `msg_e${eventId}_i${integrationId}`, action: 'flag.updated', requestBody: '{}', result, at: new Date() };
}

/** A new integration of project `p`, subscribed to flag.updated; answers its id. */
async function integrationOf(p: Awaited<ReturnType<TestApi['project']>>, name: string): Promise<number> {
  return (await p.post('/api/v1/integrations', { name, configJson: { url: 'https://hooks.example.com/a' }, eventSubscriptionsJson: ['flag.updated'] })).body.id as number;
}

beforeAll(async () => {
  api = await startTestApi();
  recorder = new OutcomeRecorder(api.server.db, createLogger('silent'), { retention: 100 });
  const p = await api.project();
  kept = await integrationOf(p, 'kept');
  gone = await integrationOf(p, 'gone');
});
afterAll(async () => {
  await recorder.close();
  await api.close();
});

const rows = (integrationId: number) => api.server.db('deliveries').where('integration_id', integrationId).orderBy('id').select('event_id', 'status', 'error_code');

it('saves a batch of successes with one insert and leaves the integration row alone', async () => {
  const before = await api.server.db('integrations').where('id', kept).first();
  await Promise.all([recorder.record(outcome(kept, 1, success)), recorder.record(outcome(kept, 2, success))]);
  expect(await rows(kept)).toEqual([
    { event_id: 1, status: 'success', error_code: null },
    { event_id: 2, status: 'success', error_code: null },
  ]);
  expect(await api.server.db('integrations').where('id', kept).first()).toEqual(before);
});

it('sets lastError from the newest failure of a batch', async () => {
  await Promise.all([recorder.record(outcome(kept, 3, failure)), recorder.record(outcome(kept, 4, success))]);
  const row = await api.server.db('integrations').where('id', kept).first();
  expect(row.last_error).toBe('HTTP 500');
  expect((await rows(kept)).map((r) => r.event_id)).toEqual([1, 2, 3, 4]);
});

it('keeps the newer lastError when another worker\'s batch with an older failure commits after it', async () => {
  const p = await api.project();
  const id = await integrationOf(p, 'two workers');
  const other = new OutcomeRecorder(api.server.db, createLogger('silent'), { retention: 100 });
  try {
    const older = { ...outcome(id, 1, { ...failure, error: 'HTTP 500 (older)' }), at: new Date('2026-01-01T00:00:00Z') };
    const newer = { ...outcome(id, 2, { ...failure, error: 'HTTP 502 (newer)' }), at: new Date('2026-01-01T00:00:01Z') };
    await recorder.record(newer);
    await other.record(older); // finished first, saved last
    const row = await api.server.db('integrations').where('id', id).first();
    expect(row).toMatchObject({ last_error: 'HTTP 502 (newer)', last_error_at: newer.at });
    expect((await rows(id)).map((r) => r.event_id)).toEqual([2, 1]);
  } finally {
    await other.close();
  }
});

it('goes by when attempts finished, not by when they were saved: last delivery, log and retention', async () => {
  const p = await api.project();
  const id = await integrationOf(p, 'finish order');
  const other = new OutcomeRecorder(api.server.db, createLogger('silent'), { retention: 2 });
  try {
    const at = (second: number) => new Date(`2026-01-01T00:00:0${second}Z`);
    await recorder.record({ ...outcome(id, 3, failure), at: at(3) });
    await recorder.record({ ...outcome(id, 2, success), at: at(2) }); // finished first, saved last
    const integration = (await p.get(`/api/v1/integrations/${id}`)).body;
    expect(integration).toMatchObject({ lastDeliveryAt: at(3).toISOString(), lastDeliveryStatus: 'failure' });
    const log = (await p.get(`/api/v1/integrations/${id}/deliveries`)).body as Array<{ eventId: number }>;
    expect(log.map((d) => d.eventId)).toEqual([3, 2]);

    // Retention of 2 keeps the two that finished last, whatever the order they were saved in.
    await other.record({ ...outcome(id, 1, success), at: at(1) });
    await other.close();
    expect((await rows(id)).map((r) => r.event_id).sort()).toEqual([2, 3]);
  } finally {
    await other.close();
  }
});

it('leaves out the outcomes of an integration deleted meanwhile and saves the rest of the batch', async () => {
  await api.server.db('integrations').where('id', gone).delete();
  await Promise.all([recorder.record(outcome(gone, 5, success)), recorder.record(outcome(kept, 5, success))]);
  await Promise.all([recorder.record(outcome(gone, 6, failure)), recorder.record(outcome(kept, 6, success))]);
  expect(await rows(gone)).toEqual([]);
  expect((await rows(kept)).map((r) => r.event_id)).toEqual([1, 2, 3, 4, 5, 6]);
});

it('prunes through the index, not a scan of all deliveries, however many rows the table holds', async () => {
  const p = await api.project();
  const db = api.server.db;
  await db.raw(
    `INSERT INTO integrations (project_id, name, config_json, event_subscriptions_json, url, events)
     SELECT ?, 'bulk ' || g, '{}', '[]', 'https://hooks.example.com/', '{flag.updated}' FROM generate_series(1, 2100) g`,
    [p.projectId],
  );
  const ids = (await db('integrations').where('project_id', p.projectId).orderBy('id').pluck('id')) as number[];
  // 100 rows for each of 2 100 integrations: where the old statement's plan turned to a sequential scan.
  await db.raw(
    `INSERT INTO deliveries (integration_id, webhook_id, action, status, duration_ms)
     SELECT (?::int[])[1 + g % 2100], 'msg', 'flag.updated', 'success', 1 FROM generate_series(1, 210000) g`,
    [`{${ids.join(',')}}`],
  );
  await db.raw('ANALYZE deliveries');
  for (const touched of [ids.slice(0, 1), ids.slice(0, 200)]) {
    const plan = (await db.raw(`EXPLAIN ${PRUNE_RETENTION}`, pruneBindings(touched, 100))).rows.map((row: { 'QUERY PLAN': string }) => row['QUERY PLAN']).join('\n');
    expect(plan).toContain('deliveries_integration_newest_index');
    expect(plan).not.toMatch(/Seq Scan on deliveries/);
  }
});

describe('an integration and its records go together (no foreign key: a lock per batch and a delete trigger)', () => {
  const db = () => api.server.db;

  it('deleting an integration, or the project holding it, deletes its records and no others', async () => {
    const p = await api.project({ plan: 'pro' });
    const other = await api.project();
    const [a, b] = [await integrationOf(p, 'a'), await integrationOf(p, 'b')];
    const c = await integrationOf(other, 'c');
    await Promise.all([a, a, b, c].map((id, n) => recorder.record(outcome(id, 100 + n, success))));

    expect((await p.delete(`/api/v1/integrations/${a}`)).status).toBe(204);
    expect(await rows(a)).toEqual([]);
    expect(await rows(b)).toHaveLength(1);

    await db()('projects').where('id', p.projectId).delete();
    expect(await rows(b)).toEqual([]);
    expect(await rows(c)).toHaveLength(1);
  });

  it('a delete waiting on a batch that locked the integration first still takes the batch with it', async () => {
    const p = await api.project();
    const id = await integrationOf(p, 'locked first');
    const trx = await db().transaction();
    // What the recorder's statement does, held open: lock the integration, insert its record.
    await trx.raw('SELECT id FROM integrations WHERE id = ? FOR KEY SHARE', [id]);
    await trx('deliveries').insert({ integration_id: id, event_id: 200, webhook_id: 'msg_e200', action: 'flag.updated', status: 'success', duration_ms: 1 });
    let deleted = false;
    const deleting = db()('integrations')
      .where('id', id)
      .delete()
      .then(() => (deleted = true));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(deleted).toBe(false); // the lock holds the delete back
    await trx.commit();
    await deleting;
    expect(await rows(id)).toEqual([]);
  });

  it('a batch waiting on a delete that came first leaves that integration out', async () => {
    const p = await api.project();
    const id = await integrationOf(p, 'deleted first');
    const trx = await db().transaction();
    await trx('integrations').where('id', id).delete();
    let saved = false;
    const saving = Promise.all([recorder.record(outcome(id, 300, success)), recorder.record(outcome(kept, 300, success))]).then(() => (saved = true));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(saved).toBe(false); // the batch waits for the delete to commit or roll back
    await trx.commit();
    await saving;
    expect(await rows(id)).toEqual([]);
    expect((await rows(kept)).map((r) => r.event_id)).toContain(300);
  });
});

it('a retention pass leaves out an integration being deleted (the two deadlocked), and the delete takes its records', async () => {
  const p = await api.project();
  const id = await integrationOf(p, 'being deleted');
  const pruning = new OutcomeRecorder(api.server.db, createLogger('silent'), { retention: 3, pruneEveryMs: 60_000 });
  try {
    await Promise.all(Array.from({ length: 8 }, (_, n) => pruning.record(outcome(id, 500 + n, success))));
    const deleting = await api.server.db.transaction();
    try {
      await deleting.raw('SELECT id FROM integrations WHERE id = ? FOR UPDATE', [id]); // as its delete locks it
      // Waiting for the delete instead would hang here (and hold the retention lock): failed after 5 s.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        (pruning as unknown as { prune(): Promise<void> }).prune(),
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('the retention pass waited for an integration being deleted')), 5_000))),
      ]).finally(() => clearTimeout(timer));
      expect(await rows(id)).toHaveLength(8); // left to the delete
      await deleting('integrations').where('id', id).delete();
      await deleting.commit();
    } catch (err) {
      await deleting.rollback();
      throw err;
    }
    expect(await rows(id)).toEqual([]);
  } finally {
    await pruning.close();
  }
});

it('applies the retention from several workers at once without deadlocks', async () => {
  const p = await api.project({ plan: 'enterprise' });
  const ids: number[] = [];
  for (let i = 0; i < 20; i++) {
    ids.push((await p.post('/api/v1/integrations', { name: `r${i}`, configJson: { url: 'https://hooks.example.com/r' }, eventSubscriptionsJson: ['flag.updated'] })).body.id);
  }
  const logged: string[] = [];
  const sink = new PassThrough();
  sink.on('data', (line: Buffer) => logged.push(line.toString()));
  const workers = Array.from({ length: 4 }, () => new OutcomeRecorder(api.server.db, createLogger('warn', { destination: sink }), { retention: 5, pruneEveryMs: 60_000 }));
  for (let round = 0; round < 5; round++) {
    // Every worker writes for every integration, each in its own order, then all prune at once.
    await Promise.all(
      workers.map((w, k) => Promise.all([...ids].sort(() => (k % 2 ? 1 : -1)).flatMap((id) => Array.from({ length: 4 }, (_, n) => w.record(outcome(id, round * 1000 + k * 100 + n, success)))))),
    );
    await Promise.all(workers.map((w) => (w as unknown as { prune(): Promise<void> }).prune()));
  }
  await Promise.all(workers.map((w) => w.close()));
  expect(logged).toEqual([]);
  const counts = await api.server.db('deliveries').whereIn('integration_id', ids).groupBy('integration_id').select('integration_id').count({ n: '*' });
  expect(counts.map((c) => Number(c.n))).toEqual(Array(ids.length).fill(5));
});

describe('recordedPairs', () => {
  it('finds which (integration, event) pairs have records among tens of thousands (one placeholder per pair overflowed)', async () => {
    await Promise.all([recorder.record(outcome(kept, 700_001, success)), recorder.record(outcome(kept, 700_002, failure))]);
    const pairs = Array.from({ length: 20_000 }, (_, i) => ({ integrationId: kept + (i % 2), eventId: 690_000 + i }));
    pairs.push({ integrationId: kept, eventId: 700_001 }, { integrationId: kept + 1, eventId: 700_002 }, { integrationId: kept, eventId: 700_002 });
    expect(await recordedPairs(api.server.db, pairs)).toEqual(new Set([`e700001-i${kept}`, `e700002-i${kept}`]));
    expect(await recordedPairs(api.server.db, [])).toEqual(new Set());
  });
});
