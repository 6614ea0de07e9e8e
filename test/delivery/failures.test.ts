import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { flagCreatedJob, startDeliveryHarness, type DeliveryHarness } from '../support/delivery.js';
import { freePort } from '../support/ports.js';
import { startSink, type Sink } from '../support/sink.js';

let h: DeliveryHarness;
let untrusted: Sink;
beforeAll(async () => {
  h = await startDeliveryHarness({ WEBHOOK_TIMEOUT_MS: '1000' });
  untrusted = await startSink({ cert: 'untrusted' });
});
afterAll(async () => {
  await untrusted.close();
  await h.close();
});

/** Connects an integration to `url`, fires one flag.created, and answers its delivery record once saved. */
async function deliverOnce(url: string) {
  const p = await h.api.project();
  const integration = (
    await p.post('/api/v1/integrations', { name: 'failing', configJson: { url }, eventSubscriptionsJson: ['flag.created'] })
  ).body;
  await p.post('/api/v1/flags', { key: 'f', name: 'F' });
  const [record] = await h.eventually(async () => {
    const log = (await p.get(`/api/v1/integrations/${integration.id}/deliveries`)).body;
    return log.length > 0 && log;
  });
  const after = (await p.get(`/api/v1/integrations/${integration.id}`)).body;
  expect(after.lastDeliveryStatus).toBe('failure');
  expect(after.lastError).toBe(record.error);
  expect(after.lastErrorAt).toEqual(expect.any(String));
  expect(record.error).not.toContain('\n');
  expect(record.error.length).toBeLessThanOrEqual(500);
  return record;
}

describe('failure outcomes reach lastError and the delivery log', () => {
  it('HTTP 5xx', async () => {
    h.sink.respond((_req, res) => res.writeHead(500).end('boom: database on fire'));
    const record = await deliverOnce(`${h.sink.url}/5xx`);
    expect(record).toMatchObject({ status: 'failure', errorCode: 'E_HTTP', httpStatus: 500, error: 'HTTP 500 Internal Server Error: boom: database on fire' });
  });

  it('a timeout with a short WEBHOOK_TIMEOUT_MS', async () => {
    h.sink.respond(() => new Promise(() => undefined));
    const record = await deliverOnce(`${h.sink.url}/hang`);
    expect(record).toMatchObject({ errorCode: 'E_TIMEOUT', httpStatus: null, error: 'timeout after 1000 ms' });
    expect(record.durationMs).toBeGreaterThanOrEqual(990);
    expect(record.durationMs).toBeLessThan(3000);
  });

  it('a redirect, not followed', async () => {
    h.sink.respond((_req, res) => res.writeHead(302, { Location: 'https://elsewhere.example.com/hooks' }).end());
    const before = h.sink.requests.length;
    const record = await deliverOnce(`${h.sink.url}/moved`);
    expect(record).toMatchObject({ errorCode: 'E_REDIRECT', httpStatus: 302, error: 'redirect to https://elsewhere.example.com/hooks not followed' });
    expect(h.sink.requests.slice(before).map((r) => r.path)).toEqual(['/moved']);
  });

  it('a TLS failure (a certificate no trusted CA issued)', async () => {
    const record = await deliverOnce(`${untrusted.url}/tls`);
    expect(record).toMatchObject({ errorCode: 'E_TLS', httpStatus: null });
    expect(record.error).toMatch(/^TLS: /);
    expect(untrusted.requests).toEqual([]);
  });

  it('connection refused', async () => {
    const port = await freePort();
    const record = await deliverOnce(`https://127.0.0.1:${port}/refused`);
    expect(record).toMatchObject({ errorCode: 'E_CONNECT', httpStatus: null, address: '127.0.0.1' });
    expect(record.error).toMatch(/^connect: .*refused/i);
  });
});

describe('a job whose workers stopped twice before saving its outcome', () => {
  it('is failed by BullMQ unrun, and recorded as E_STALLED: its outcome is unknown, never left unsaid', async () => {
    const p = await h.api.project();
    const integration = (await p.post('/api/v1/integrations', { name: 'stalled', configJson: { url: `${h.sink.url}/stalled` }, eventSubscriptionsJson: ['flag.created'] })).body;
    const before = h.sink.requests.length;
    const { queue } = h.api.server;
    const job = await queue.add('flag.created', flagCreatedJob(integration, p.projectId, 424_242, 'msg_stalled'), { delay: 60_000 });
    // What BullMQ's stall check writes on a job's second stall (maxStalledCount 1) before putting it back in line.
    const redis = new Redis(h.api.config.redisUrl);
    await redis.hset(queue.toKey(job.id!), 'defa', 'job stalled more than allowable limit').finally(() => redis.disconnect());
    await job.promote();

    const [record] = await h.eventually(async () => {
      const log = (await p.get(`/api/v1/integrations/${integration.id}/deliveries`)).body;
      return log.length > 0 && log;
    });
    expect(record).toMatchObject({ webhookId: 'msg_stalled', status: 'failure', errorCode: 'E_STALLED', httpStatus: null, address: null, durationMs: 0 });
    expect(record.error).toBe('stalled: the workers delivering it stopped twice before its outcome was saved; it may have been sent, and is not sent again');
    expect((await p.get(`/api/v1/integrations/${integration.id}`)).body.lastError).toBe(record.error);
    expect(await job.isFailed()).toBe(true);
    expect(h.sink.requests.length).toBe(before); // not run: nothing sent

    // One with an attempt recorded already (its worker died after saving it): that record stands alone.
    // A second without one, stalled after it, goes through the same handler and writer: once its
    // E_STALLED record is there, the first would have had one too.
    await h.api.server.db('deliveries').insert({ integration_id: integration.id, event_id: 424_243, webhook_id: 'msg_attempted', action: 'flag.created', status: 'success', http_status: 200, duration_ms: 5 });
    const again = new Redis(h.api.config.redisUrl);
    try {
      for (const [eventId, webhookId] of [[424_243, 'msg_attempted'], [424_244, 'msg_sentinel']] as const) {
        const stalled = await queue.add('flag.created', flagCreatedJob(integration, p.projectId, eventId, webhookId), { delay: 60_000 });
        await again.hset(queue.toKey(stalled.id!), 'defa', 'job stalled more than allowable limit');
        await stalled.promote();
        await h.eventually(() => stalled.isFailed());
      }
    } finally {
      again.disconnect();
    }
    const log = await h.eventually(async () => {
      const records = (await p.get(`/api/v1/integrations/${integration.id}/deliveries`)).body as Array<{ webhookId: string; errorCode: string | null }>;
      return records.some((r) => r.webhookId === 'msg_sentinel') && records;
    });
    expect(log.filter((r) => r.webhookId === 'msg_sentinel').map((r) => r.errorCode)).toEqual(['E_STALLED']);
    expect(log.filter((r) => r.webhookId === 'msg_attempted').map((r) => r.errorCode)).toEqual([null]);
  });
});
