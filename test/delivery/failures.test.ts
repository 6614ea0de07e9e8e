import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDeliveryHarness, type DeliveryHarness } from '../support/delivery.js';
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
