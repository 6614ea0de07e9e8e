import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServer } from '../../src/api-server.js';
import { createLogger } from '../../src/logger.js';
import { startDeliveryWorker } from '../../src/delivery/worker.js';
import { createWorkerConnection } from '../../src/delivery/queue.js';
import { DeliveryTally, deliveryTallyKey } from '../../src/ops/delivery-tally.js';
import { startMetricsServer } from '../../src/ops/metrics-server.js';
import { deleteQueueKeys, startTestApi } from '../support/api.js';
import { eventually, startDeliveryHarness, type DeliveryHarness } from '../support/delivery.js';
import { REDIS_URL } from '../support/env.js';
import { proxyDatabase, startTcpProxy } from '../support/tcp-proxy.js';
import { rawHttp } from '../support/raw-http.js';

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** Every line the api and worker log, captured in memory. */
const captured: string[] = [];
const stream = new PassThrough();
stream.on('data', (chunk: Buffer) => captured.push(chunk.toString('utf8')));

let h: DeliveryHarness;
beforeAll(async () => {
  h = await startDeliveryHarness({ ADMIN_USER: 'ops', ADMIN_PASSWORD: 'correct horse battery staple' }, {}, createLogger('debug', { destination: stream }));
});
afterAll(() => h.close());

describe('Bull Board at /admin/queues', () => {
  it('asks for basic auth, refuses wrong credentials, and serves the board read-only to the right ones', async () => {
    const url = `${h.api.server.url}/admin/queues`;
    const anonymous = await fetch(url);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Basic realm="mozhno admin"/);
    for (const [user, password] of [['ops', 'wrong'], ['admin', 'correct horse battery staple'], ['ops', 'correct horse battery stapl']]) {
      expect((await fetch(url, { headers: { authorization: basic(user!, password!) } })).status).toBe(401);
    }
    // Two Authorization headers, one of them right: refused, whichever comes first.
    for (const pair of [[basic('ops', 'correct horse battery staple'), basic('ops', 'wrong')], [basic('ops', 'wrong'), basic('ops', 'correct horse battery staple')]]) {
      expect((await rawHttp(h.api.server.url, 'GET', '/admin/queues/api/queues', pair.map((v) => ['Authorization', v] as [string, string]))).status).toBe(401);
    }
    const page = await fetch(url, { headers: { authorization: basic('ops', 'correct horse battery staple') } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<title>');

    const queues = await fetch(`${url}/api/queues`, { headers: { authorization: basic('ops', 'correct horse battery staple') } });
    expect(queues.status).toBe(200);
    const body = (await queues.json()) as any;
    expect(body.queues.map((q: any) => [q.name, q.readOnlyMode])).toEqual([['deliveries', true]]);
    // Job data names users (their emails): never kept in a browser's or proxy's cache.
    expect(queues.headers.get('cache-control')).toBe('no-store');
    expect(page.headers.get('cache-control')).toBe('no-store');
    // Read-only: no clean, retry or pause through the board.
    const clean = await fetch(`${url}/api/queues/deliveries/clean/completed`, { method: 'PUT', headers: { authorization: basic('ops', 'correct horse battery staple') } });
    expect(clean.status).not.toBe(200);
  });

  it('does not exist without ADMIN_PASSWORD: 404', async () => {
    const api = await startTestApi({ ADMIN_USER: 'ops' });
    try {
      for (const path of ['/admin/queues', '/admin/queues/api/queues', '/admin/queues/static/x.js']) {
        const answer = await fetch(`${api.server.url}${path}`, { headers: { authorization: basic('ops', '') } });
        expect(answer.status, path).toBe(404);
      }
    } finally {
      await api.close();
    }
  });
});

describe('health', () => {
  it('/healthz and /readyz answer 200 with PostgreSQL and Redis up', async () => {
    expect(await (await fetch(`${h.api.server.url}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${h.api.server.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', postgres: 'ok', redis: 'ok' });
  });

  it('/readyz answers 503 while the database lacks a migration of this code (a pod started before the migrate Job finished)', async () => {
    const api = await startTestApi();
    try {
      const [newest] = (await api.server.db('knex_migrations').orderBy('id', 'desc').limit(1).pluck('name')) as string[];
      await api.server.db('knex_migrations').where('name', newest).delete();
      const ready = await fetch(`${api.server.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({ status: 'unavailable', postgres: `not migrated: ${newest} missing (run the migrations: npm run migrate, or the image's migrate command, as the compose migrate service and the Kubernetes migrate Job do)`, redis: 'ok' });
      await api.server.db('knex_migrations').insert({ name: newest, batch: 99, migration_time: new Date() });
      expect((await fetch(`${api.server.url}/readyz`)).status).toBe(200);
    } finally {
      await api.close();
    }
  });

  it('/readyz answers 503 naming Redis when it is down, while /healthz stays 200', async () => {
    const api = await startTestApi({ REDIS_URL: 'redis://127.0.0.1:1' });
    try {
      const ready = await fetch(`${api.server.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({ status: 'unavailable', postgres: 'ok', redis: 'unreachable: ECONNREFUSED' });
      expect((await fetch(`${api.server.url}/healthz`)).status).toBe(200);
      // The api's readiness probe: Redis reported, not required (changes are still taken and queued later).
      const probe = await fetch(`${api.server.url}/readyz?optional=redis`);
      expect(probe.status).toBe(200);
      expect(await probe.json()).toEqual({ status: 'ready', postgres: 'ok', redis: 'unreachable: ECONNREFUSED' });
    } finally {
      await api.close();
    }
  });

  it('with Redis taking commands but no longer answering, a test send is 503 once the command timeout passes, not left waiting', async () => {
    const redis = new URL(REDIS_URL);
    const proxy = await startTcpProxy({ host: redis.hostname, port: Number(redis.port || 6379) });
    const api = await startTestApi({ REDIS_URL: `redis://127.0.0.1:${proxy.port}` }, { server: { redisCommandTimeoutMs: 500 } });
    try {
      const p = await api.project();
      const integration = (await p.post('/api/v1/integrations', { name: 't', configJson: { url: 'https://hooks.example.com/t' }, eventSubscriptionsJson: ['flag.created'] })).body;
      await eventually(async () => (await fetch(`${api.server.url}/readyz`)).status === 200);
      proxy.stall();
      const sent = await p.post(`/api/v1/integrations/${integration.id}/test`, {});
      expect(sent.status).toBe(503);
      expect(sent.body.error.code).toBe('unavailable');
    } finally {
      await proxy.close();
      await api.close(); // its own clean-up goes through the proxy, closed by now
      await deleteQueueKeys(REDIS_URL, api.config.queuePrefix);
    }
  });

  it('with Redis down since the api started, /metrics leaves the queue out and a test send is 503, neither waiting for Redis', async () => {
    const api = await startTestApi({ REDIS_URL: 'redis://127.0.0.1:1' });
    try {
      const metrics = await fetch(`${api.server.url}/metrics`, { signal: AbortSignal.timeout(5_000) });
      expect(metrics.status).toBe(200);
      const text = await metrics.text();
      expect(text).toMatch(/^mozhno_relay_lag_seconds \d/m);
      expect(text).not.toMatch(/^mozhno_jobs\{/m);

      const p = await api.project();
      const integration = (await p.post('/api/v1/integrations', { name: 't', configJson: { url: 'https://hooks.example.com/t' }, eventSubscriptionsJson: ['flag.created'] })).body;
      const sent = await p.post(`/api/v1/integrations/${integration.id}/test`, {});
      expect(sent.status).toBe(503);
      expect(sent.body.error).toEqual({ code: 'unavailable', message: 'the delivery queue is unreachable right now; try again shortly' });
    } finally {
      await api.close();
    }
  });
});

describe('metrics', () => {
  it('the api exposes request timings, queue depth, events relayed and relay lag', async () => {
    const p = await h.api.project();
    await p.post('/api/v1/integrations', { name: 'm', configJson: { url: `${h.sink.url}/m` }, eventSubscriptionsJson: ['flag.created'] });
    await p.post('/api/v1/flags', { key: 'm', name: 'M' });
    // Refused before routing (a wrong key): still counted as an API request, not as "unmatched".
    expect((await h.api.client('Bearer mzk_wrong').get('/api/v1/flags')).status).toBe(401);
    await h.sink.waitForRequests(1);
    // The relay counts a batch once it commits, which can be a moment after the delivery arrives.
    const text = await h.eventually(async () => {
      const answer = await fetch(`${h.api.server.url}/metrics`);
      expect(answer.headers.get('content-type')).toMatch(/^text\/plain/);
      const body = await answer.text();
      return /^mozhno_jobs_queued_total [1-9]/m.test(body) && body;
    });
    expect(text).toMatch(/^mozhno_http_request_duration_seconds_count\{method="POST",route="\/api\/v1\/flags",status="201"\} [1-9]/m);
    expect(text).toMatch(/^mozhno_http_request_duration_seconds_count\{method="GET",route="\/api\/v1\/\*",status="401"\} [1-9]/m);
    expect(text).toMatch(/^mozhno_events_relayed_total [1-9]/m);
    expect(text).toMatch(/^mozhno_jobs_queued_total [1-9]/m);
    for (const state of ['waiting', 'active', 'delayed', 'failed']) expect(text).toMatch(new RegExp(`^mozhno_jobs\\{state="${state}"\\} \\d+`, 'm'));
    expect(text).toMatch(/^mozhno_relay_lag_seconds \d/m);
    expect(text).toMatch(/^process_resident_memory_bytes \d/m);
  });

  it('leaves the relay lag out while PostgreSQL does not answer, rather than reading 0 ("none waits")', async () => {
    const { proxy, url: proxied } = await proxyDatabase(h.api.config.databaseUrl);
    // A second api of the same database and queue, reaching PostgreSQL through the proxy. Its relay
    // is not the one queueing (one relay at a time), so nothing here depends on it.
    const second = await startApiServer({ ...h.api.config, databaseUrl: proxied, port: 0 }, createLogger('silent'), { host: '127.0.0.1' });
    const scrape = async () => (await fetch(`${second.url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
    try {
      expect(await scrape()).toMatch(/^mozhno_relay_lag_seconds \d/m);
      proxy.stall();
      const text = await scrape();
      expect(text).toContain('# TYPE mozhno_relay_lag_seconds gauge');
      expect(text).not.toMatch(/^mozhno_relay_lag_seconds /m);
      expect(text).toMatch(/^mozhno_jobs\{state="waiting"\} \d/m); // Redis still answers: the queue is there
    } finally {
      await proxy.close(); // its stalled connections fail now, so the second api's pool can close
      await second.close();
    }
  });

  it('the api exposes deliveries by result and code and the duration histogram, summed over every worker process', async () => {
    // A second worker beside the harness's: the api's figures are the two workers' together.
    const second = startDeliveryWorker(h.api.config, createLogger('silent'));
    try {
      await second.worker.waitUntilReady();
      const p = await h.api.project();
      await p.post('/api/v1/integrations', { name: 'fleet', configJson: { url: `${h.sink.url}/fleet` }, eventSubscriptionsJson: ['flag.created', 'flag.updated'] });
      h.sink.respond((req, res) => res.writeHead(req.url === '/fleet' ? 503 : 200).end());
      const flag = (await p.post('/api/v1/flags', { key: 'fleet', name: 'Fleet' })).body;
      for (let i = 0; i < 9; i++) await p.put(`/api/v1/flags/${flag.id}`, { name: `Fleet ${i}` });
      const byWorkers = async () => {
        let failures = 0;
        let all = 0;
        for (const worker of [h.worker, second]) {
          for (const v of (await worker.metrics.deliveries.get()).values) {
            all += v.value;
            if (v.labels.code === 'E_HTTP') failures += v.value;
          }
        }
        return { failures, all };
      };
      await h.eventually(async () => (await byWorkers()).failures >= 10 || undefined, 15_000);
      const { failures, all } = await byWorkers();
      const sample = (text: string, line: RegExp) => Number(line.exec(text)?.[1] ?? NaN);
      const counted = (text: string) => [...text.matchAll(/^mozhno_deliveries_total\{result="\w+",code="\w+"\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
      // Each worker adds its counts to Redis once a second: poll until both have.
      const text = await h.eventually(async () => {
        const body = await (await fetch(`${h.api.server.url}/metrics`)).text();
        return sample(body, /^mozhno_deliveries_total\{result="failure",code="E_HTTP"\} (\d+)$/m) === failures && counted(body) === all && body;
      }, 5_000);
      expect(text).toMatch(/^# TYPE mozhno_deliveries_total counter$/m);
      expect(text).toMatch(/^# TYPE mozhno_delivery_duration_seconds histogram$/m);
      const infinity = sample(text, /^mozhno_delivery_duration_seconds_bucket\{le="\+Inf",result="failure"\} (\d+)$/m);
      expect(infinity).toBe(failures);
      expect(sample(text, /^mozhno_delivery_duration_seconds_count\{result="failure"\} (\d+)$/m)).toBe(failures);
      expect(text).toMatch(/^mozhno_delivery_duration_seconds_bucket\{le="0.005",result="failure"\} \d+$/m);
      expect(sample(text, /^mozhno_delivery_duration_seconds_sum\{result="failure"\} ([\d.e-]+)$/m)).toBeGreaterThan(0);
    } finally {
      await second.close();
      h.sink.reset();
    }
  });

  it('a worker\'s counts that Redis refused are added with the next flush, and only those', async () => {
    const redis = new Redis(REDIS_URL);
    const prefix = `mozhno-test-tally-${randomBytes(4).toString('hex')}`;
    const tally = new DeliveryTally(redis, prefix, createLogger('silent'));
    const key = deliveryTallyKey(prefix);
    try {
      // A field that is not a number: HINCRBY on it fails inside the MULTI, the other commands succeed.
      await redis.hset(key, 'total|failure|E_HTTP', 'not a number');
      tally.add('success', 'none', 0.02);
      tally.add('failure', 'E_HTTP', 0.03);
      await tally.flush();
      expect(await redis.hget(key, 'total|success|none')).toBe('1');
      expect(await redis.hget(key, 'total|failure|E_HTTP')).toBe('not a number');

      await redis.hdel(key, 'total|failure|E_HTTP');
      await tally.flush();
      expect(await redis.hget(key, 'total|failure|E_HTTP')).toBe('1');
      expect(await redis.hget(key, 'total|success|none')).toBe('1'); // not added twice
      expect(await redis.hget(key, 'bucket|failure|0.05')).toBe('1');
    } finally {
      await tally.close();
      await deleteQueueKeys(REDIS_URL, prefix); // the hash and the worker's flush mark
      redis.disconnect();
    }
  });

  it('on close, a flush that did not get through goes out, and so does what was counted after it', async () => {
    const redis = new Redis(REDIS_URL);
    const prefix = `mozhno-test-tally-${randomBytes(4).toString('hex')}`;
    const tally = new DeliveryTally(redis, prefix, createLogger('silent'));
    const key = deliveryTallyKey(prefix);
    // Its flush mark of the wrong type: Redis answers the flush with an error, as it would while LOADING or READONLY.
    const mark = (tally as unknown as { flushedKey: string }).flushedKey;
    try {
      await redis.hset(mark, 'x', '1');
      tally.add('success', 'none', 0.02);
      await tally.flush();
      expect(await redis.hget(key, 'total|success|none')).toBeNull();
      tally.add('failure', 'E_HTTP', 0.03);
      await redis.del(mark);
      await tally.close();
      expect(await redis.hget(key, 'total|success|none')).toBe('1');
      expect(await redis.hget(key, 'total|failure|E_HTTP')).toBe('1');
    } finally {
      await deleteQueueKeys(REDIS_URL, prefix);
      redis.disconnect();
    }
  });

  it('a flush Redis applied but whose answer was lost in a connection reset is not added twice when it is sent again', async () => {
    const direct = new Redis(REDIS_URL);
    const target = new URL(REDIS_URL);
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 6379) });
    const connection = createWorkerConnection({ redisUrl: `redis://127.0.0.1:${proxy.port}`, redisCluster: false });
    connection.on('error', () => undefined);
    const prefix = `mozhno-test-tally-${randomBytes(4).toString('hex')}`;
    const tally = new DeliveryTally(connection, prefix, createLogger('silent'));
    const key = deliveryTallyKey(prefix);
    try {
      await connection.ping();
      tally.add('success', 'none', 0.02);
      proxy.dropReplies();
      const flushed = tally.flush();
      await eventually(async () => (await direct.hget(key, 'total|success|none')) === '1');
      proxy.cut(); // the reply is lost; ioredis reconnects and sends the flush again
      proxy.restore();
      await flushed;
      tally.add('success', 'none', 0.02);
      await tally.flush();
      expect(await direct.hget(key, 'total|success|none')).toBe('2');
      expect(await direct.hget(key, 'bucket|success|0.025')).toBe('2');
    } finally {
      await tally.close();
      connection.disconnect();
      await proxy.close();
      await deleteQueueKeys(REDIS_URL, prefix);
      direct.disconnect();
    }
  });

  it('the worker exposes deliveries by result and code, and the duration histogram, on its own port', async () => {
    const p = await h.api.project();
    await p.post('/api/v1/integrations', { name: 'w', configJson: { url: `${h.sink.url}/w` }, eventSubscriptionsJson: ['flag.created'] });
    h.sink.respond((_req, res) => res.writeHead(502).end());
    await p.post('/api/v1/flags', { key: 'w', name: 'W' });
    await h.eventually(async () => (await h.worker.metrics.deliveries.get()).values.some((v) => v.labels.code === 'E_HTTP') || undefined);
    const server = await startMetricsServer(0, h.worker.metrics.registry, () => true);
    try {
      const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
      expect(text).toMatch(/^mozhno_deliveries_total\{result="failure",code="E_HTTP"\} [1-9]/m);
      expect(text).toMatch(/^mozhno_delivery_duration_seconds_bucket\{le="0.005",result="failure"\} \d+/m);
      expect(text).toMatch(/^mozhno_delivery_latency_seconds_count [1-9]/m);
      expect(await (await fetch(`http://127.0.0.1:${server.port}/healthz`)).json()).toEqual({ status: 'ok' });
      expect((await fetch(`http://127.0.0.1:${server.port}/other`)).status).toBe(404);
    } finally {
      await server.close();
      h.sink.reset();
    }
  });
});

describe('logs', () => {
  it('one JSON line per request and per delivery, without tokens, secrets, header values or bodies', async () => {
    const secret = `whsec_${Buffer.alloc(32, 9).toString('base64')}`;
    const headerValue = 'Bearer receiver-credential-4f1c';
    const p = await h.api.project();
    const integration = (
      await p.post('/api/v1/integrations', {
        name: 'logged',
        configJson: { url: `${h.sink.url}/logged`, headers: { Authorization: headerValue }, secret, body: '{"name":"[[events.resourceName]]"}' },
        eventSubscriptionsJson: ['flag.created'],
      })
    ).body;
    await h.api.client(`Bearer ${p.token}x`).get('/api/v1/flags'); // a wrong token is not logged either
    expect((await fetch(`${h.api.server.url}/healthz`)).status).toBe(200);
    await p.post('/api/v1/flags', { key: 'very-private-flag-name', name: 'Private' });
    await h.sink.waitForRequests(1);
    await h.eventually(async () => (await p.get(`/api/v1/integrations/${integration.id}/deliveries`)).body.length === 1 || undefined);
    await new Promise((resolve) => setTimeout(resolve, 200));

    const lines = captured.join('').split('\n').filter(Boolean).map((line) => JSON.parse(line));
    expect(lines.some((l) => l.msg === 'request' && l.method === 'POST' && l.path === '/api/v1/flags' && l.status === 201 && typeof l.ms === 'number')).toBe(true);
    // Which key made a change: its ids (never the token) on the request's line; none for a key refused.
    expect(lines.findLast((l) => l.msg === 'request' && l.method === 'POST' && l.path === '/api/v1/flags')).toMatchObject({ projectId: p.projectId, apiKeyId: p.apiKeyId });
    expect(lines.findLast((l) => l.msg === 'request' && l.status === 401)).not.toHaveProperty('apiKeyId');
    // Probes and scrapes, every few seconds from the platform, are logged at debug (20), not info (30).
    const probeLevels = lines.filter((l) => l.msg === 'request' && ['/healthz', '/metrics'].includes(l.path)).map((l) => l.level);
    expect(probeLevels.length).toBeGreaterThan(0);
    expect(new Set(probeLevels)).toEqual(new Set([20]));
    expect(lines.some((l) => l.msg === 'delivery' && l.integrationId === integration.id && l.status === 'success' && l.code === null && typeof l.ms === 'number')).toBe(true);
    const all = captured.join('');
    for (const leak of [p.token, p.token.slice(4, 20), secret.slice(6, 30), headerValue, 'receiver-credential', 'very-private-flag-name']) {
      expect(all).not.toContain(leak);
    }
  });
});
