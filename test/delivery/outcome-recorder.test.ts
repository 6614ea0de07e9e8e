import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { DeliveryResult } from '../../src/delivery/http-client.js';
import { OutcomeRecorder, type DeliveryOutcome } from '../../src/delivery/outcome-recorder.js';
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

beforeAll(async () => {
  api = await startTestApi();
  recorder = new OutcomeRecorder(api.server.db, createLogger('silent'), { retention: 100 });
  const p = await api.project();
  const create = async (name: string) =>
    (await p.post('/api/v1/integrations', { name, configJson: { url: 'https://hooks.example.com/a' }, eventSubscriptionsJson: ['flag.updated'] })).body.id as number;
  kept = await create('kept');
  gone = await create('gone');
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

it('leaves out the outcomes of an integration deleted meanwhile and saves the rest of the batch', async () => {
  await api.server.db('integrations').where('id', gone).delete();
  // Successes only: the plain insert meets the foreign key, and the batch is written again without them.
  await Promise.all([recorder.record(outcome(gone, 5, success)), recorder.record(outcome(kept, 5, success))]);
  // With a failure: the careful statement from the start.
  await Promise.all([recorder.record(outcome(gone, 6, failure)), recorder.record(outcome(kept, 6, success))]);
  expect(await rows(gone)).toEqual([]);
  expect((await rows(kept)).map((r) => r.event_id)).toEqual([1, 2, 3, 4, 5, 6]);
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
