import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { checkRedis, createProducerConnection, createWorkerConnection } from '../../src/delivery/queue.js';
import { RELAY_LOCK } from '../../src/events/relay.js';
import { startDeliveryHarness, type DeliveryHarness } from '../support/delivery.js';
import { REDIS_URL } from '../support/env.js';
import { startTcpProxy } from '../support/tcp-proxy.js';

const tag = `{mz-${randomBytes(3).toString('hex')}}`;
let h: DeliveryHarness;
beforeAll(async () => {
  h = await startDeliveryHarness({ QUEUE_PREFIX: tag });
});
afterAll(() => h.close());

it('honours a Redis Cluster hash-tag QUEUE_PREFIX: every key shares the tag, and deliveries flow', async () => {
  const p = await h.api.project();
  await p.post('/api/v1/integrations', { name: 'tagged', configJson: { url: `${h.sink.url}/tagged` }, eventSubscriptionsJson: ['flag.created'] });
  await p.post('/api/v1/flags', { key: 'tagged', name: 'Tagged' });
  await h.sink.waitForRequests(1);
  const redis = new Redis(h.env.REDIS_URL!);
  try {
    const keys = await redis.keys(`${tag}*`);
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.every((key) => key.startsWith(`${tag}:`))).toBe(true);
    expect(keys.some((key) => key.startsWith(`${tag}:deliveries:`))).toBe(true);
  } finally {
    redis.disconnect();
  }
});

it('queues one job per (event, integration) with a derived id, one attempt and bounded retention of finished jobs', async () => {
  const p = await h.api.project();
  const integration = (await p.post('/api/v1/integrations', { name: 'opts', configJson: { url: `${h.sink.url}/opts` }, eventSubscriptionsJson: ['flag.created'] })).body;
  await h.worker.worker.pause();
  try {
    await p.post('/api/v1/flags', { key: 'opts', name: 'Opts' });
    const event = (await p.get('/api/v1/events')).body[0];
    const job = await h.eventually(() => h.api.server.queue.getJob(`e${event.id}-i${integration.id}`));
    expect(job.opts).toMatchObject({ attempts: 1, removeOnComplete: { age: 3600, count: 10_000 }, removeOnFail: { age: 604_800, count: 10_000 } });
    expect(job.data).toMatchObject({ integrationId: integration.id, eventId: event.id, webhookId: `msg_e${event.id}_i${integration.id}`, vars: { action: 'flag.created', resourceName: 'opts' } });

    // Relaying the same event again (a crash between enqueue and COMMIT) adds no second job.
    await h.api.server.db('events').where('id', event.id).update({ queued_at: null });
    h.api.server.relay.wake();
    await h.eventually(async () => (await h.api.server.db('events').where('id', event.id).first()).queued_at !== null);
    expect(await h.api.server.queue.getWaitingCount()).toBe(1);
  } finally {
    h.worker.worker.resume();
  }
  await h.sink.waitForRequests(2);
  await new Promise((resolve) => setTimeout(resolve, 300));
  expect(h.sink.requests.filter((r) => r.path === '/opts')).toHaveLength(1);
});

it('relays one batch at a time across api processes, so a newer event never overtakes an older batch', async () => {
  const p = await h.api.project();
  await p.post('/api/v1/integrations', { name: 'order', configJson: { url: `${h.sink.url}/order` }, eventSubscriptionsJson: ['flag.created'] });
  await h.worker.worker.pause();
  // Another api's relay in the middle of adding a batch holds the batch lock.
  const otherRelay = await h.api.server.db.transaction();
  try {
    await otherRelay.raw('SELECT pg_advisory_xact_lock(?)', [RELAY_LOCK]);
    for (const key of ['order-1', 'order-2']) await p.post('/api/v1/flags', { key, name: key });
    const unqueued = () => h.api.server.db('events').where({ project_id: p.projectId, action: 'flag.created' }).whereNull('queued_at');
    h.api.server.relay.wake();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(await unqueued()).toHaveLength(2);
    await otherRelay.commit();
    await h.eventually(async () => (await unqueued()).length === 0);
    const waiting = await h.api.server.queue.getWaiting();
    const events = waiting.filter((job) => job.data.vars.projectId === p.projectId).map((job) => job.data.vars.resourceName);
    expect(events).toEqual(['order-1', 'order-2']); // next to be taken first
  } finally {
    if (!otherRelay.isCompleted()) await otherRelay.rollback();
    h.worker.worker.resume();
  }
  await h.eventually(() => h.sink.requests.filter((r) => r.path === '/order').length === 2);
});

it('queues every event of a burst of concurrent commits, each once, whatever order the wake-ups arrive in', async () => {
  const p = await h.api.project();
  const integration = (await p.post('/api/v1/integrations', { name: 'burst', configJson: { url: `${h.sink.url}/burst` }, eventSubscriptionsJson: ['flag.created'] })).body;
  await h.worker.worker.pause();
  try {
    const created = await Promise.all(Array.from({ length: 25 }, (_, i) => p.post('/api/v1/flags', { key: `burst-${i}`, name: `Burst ${i}` })));
    expect(created.map((r) => r.status)).toEqual(Array(25).fill(201));
    const events = await h.api.server.db('events').where({ project_id: p.projectId, action: 'flag.created' }).select('id', 'queued_at');
    expect(events).toHaveLength(25);
    await h.eventually(async () => (await h.api.server.db('events').whereIn('id', events.map((e) => e.id)).whereNull('queued_at')).length === 0 || undefined);
    for (const event of events) expect(await h.api.server.queue.getJob(`e${event.id}-i${integration.id}`), `event ${event.id}`).toBeDefined();
  } finally {
    h.worker.worker.resume();
  }
  await h.eventually(() => h.sink.requests.filter((r) => r.path === '/burst').length >= 25 || undefined);
  await new Promise((resolve) => setTimeout(resolve, 300));
  expect(h.sink.requests.filter((r) => r.path === '/burst')).toHaveLength(25);
});

it.each([
  ['producer', createProducerConnection],
  ['worker', createWorkerConnection],
])('a %s connection whose database Redis refuses, once Redis is back, retries as in an outage and never runs a command in database 0', async (_, create) => {
  const direct = new Redis(REDIS_URL);
  const [, databases] = (await direct.config('GET', 'databases')) as [string, string];
  const target = new URL(REDIS_URL);
  const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 6379) });
  proxy.cut(); // down at start: the process started without it, before any check could ask
  const connection = create({ redisUrl: `redis://127.0.0.1:${proxy.port}/${databases}`, redisCluster: false });
  const errors: string[] = [];
  connection.on('error', (err: Error) => errors.push(err.message));
  const key = `mozhno-test-db0-${randomBytes(4).toString('hex')}`;
  try {
    proxy.restore();
    await h.eventually(() => errors.includes('ERR DB index is out of range'));
    const set = connection.set(key, 'written in database 0');
    set.catch(() => undefined);
    // Long enough for a connection that went on regardless to be ready and run the SET.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(connection.status).not.toBe('ready');
    expect(await direct.exists(key)).toBe(0);
  } finally {
    connection.disconnect();
    await proxy.close();
    await direct.del(key);
    direct.disconnect();
  }
});

it('gives up the start-up check of a Redis that takes the connection and never answers, as unreachable', async () => {
  // A listener that accepts and stays silent: no RESP answer to the handshake ever comes.
  const silent = createServer(() => undefined);
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  try {
    const { port } = silent.address() as AddressInfo;
    const check = await checkRedis({ redisUrl: `redis://127.0.0.1:${port}/3`, redisCluster: false });
    expect(check).toMatchObject({ reachable: false, cause: expect.objectContaining({ message: 'no answer within 5000 ms' }) });
  } finally {
    silent.close();
  }
}, 15_000);
