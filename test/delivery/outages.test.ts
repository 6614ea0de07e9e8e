import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startApiServer } from '../../src/api-server.js';
import { createDb } from '../../src/db/knex.js';
import { InFlightLimit } from '../../src/delivery/in-flight-limit.js';
import { OutcomeRecorder } from '../../src/delivery/outcome-recorder.js';
import type { RelayedEvents } from '../../src/events/relay.js';
import { startDeliveryWorker, type DeliveryWorker } from '../../src/delivery/worker.js';
import { createLogger } from '../../src/logger.js';
import { startTestApi, type TestApi } from '../support/api.js';
import { adminQuery } from '../support/postgres-admin.js';
import { eventually } from '../support/delivery.js';
import { startSink, testCaFile, type Sink } from '../support/sink.js';
import { proxyDatabase, type TcpProxy } from '../support/tcp-proxy.js';

/**
 * The worker reaches this file's PostgreSQL through a TCP proxy the tests cut and
 * restore; the api reaches it directly, so events keep being committed and queued.
 */
let api: TestApi;
let sink: Sink;
let proxy: TcpProxy;
let worker: DeliveryWorker;
/** The worker's log lines. */
const logged: string[] = [];
const logStream = new PassThrough();
logStream.on('data', (chunk: Buffer) => logged.push(...chunk.toString('utf8').split('\n').filter(Boolean)));
const logLines = () => logged.map((line) => JSON.parse(line) as { level: number; msg: string; knex?: string; deferred?: number });

beforeAll(async () => {
  sink = await startSink();
  api = await startTestApi({ WEBHOOK_CA_FILE: testCaFile() });
  const proxied = await proxyDatabase(api.config.databaseUrl);
  proxy = proxied.proxy;
  worker = startDeliveryWorker({ ...api.config, databaseUrl: proxied.url }, createLogger('debug', { destination: logStream }), { readRetryMs: 300 });
  await worker.worker.waitUntilReady();
});
afterAll(async () => {
  proxy.restore();
  await worker?.close();
  await proxy?.close();
  await api?.close();
  await sink?.close();
});

const counter = async (metric: { get(): Promise<{ values: Array<{ value: number }> }> }) => (await metric.get()).values.reduce((sum, v) => sum + v.value, 0);

async function connect(name: string) {
  const p = await api.project();
  const integration = (await p.post('/api/v1/integrations', { name, configJson: { url: `${sink.url}/${name}` }, eventSubscriptionsJson: ['flag.created'] })).body;
  const deliveries = async () => (await p.get(`/api/v1/integrations/${integration.id}/deliveries`)).body as Array<{ status: string; eventId: number }>;
  return { p, integration, deliveries };
}

describe('PostgreSQL unreachable from the worker', () => {
  it('a job whose integration cannot be read waits, unsent, and goes out once PostgreSQL is back', async () => {
    const { p, deliveries } = await connect('before-read');
    const deferredBefore = await counter(worker.metrics.deferred);
    proxy.cut();
    try {
      await p.post('/api/v1/flags', { key: 'during-outage', name: 'During the outage' });
      await eventually(async () => (await counter(worker.metrics.deferred)) >= deferredBefore + 2 || undefined);
      // Long enough for the loader's LISTEN connection to be tried again a few times (once a second).
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      expect(sink.requests.filter((r) => r.path === '/before-read')).toEqual([]);
      expect(await api.server.queue.getJobCounts('failed')).toEqual({ failed: 0 });
    } finally {
      proxy.restore();
    }
    const [record] = await eventually(async () => {
      const log = await deliveries();
      return log.length > 0 && log;
    }, 15_000);
    expect(record).toMatchObject({ status: 'success' });
    expect(sink.requests.filter((r) => r.path === '/before-read')).toHaveLength(1);
    expect(await api.server.queue.getJobCounts('failed')).toEqual({ failed: 0 });

    // Said once when it starts and once when it ends, not per job; knex's own messages are JSON lines too (debug).
    await eventually(() => logLines().some((l) => l.msg === 'integrations can be read again'));
    const lines = logLines();
    expect(lines.filter((l) => l.msg.startsWith('integrations cannot be read'))).toHaveLength(1);
    expect(lines.find((l) => l.msg === 'integrations can be read again')?.deferred).toBeGreaterThanOrEqual(2);
    expect(lines.some((l) => l.msg === 'database connection attempt failed' && l.level === 20 && !l.knex!.includes('\n'))).toBe(true);
    // The LISTEN connection's retries too: one warning for the outage, the rest at debug level, and a line when it is back.
    const listenFailures = lines.filter((l) => l.msg.startsWith('cannot LISTEN'));
    expect(listenFailures.length).toBeGreaterThan(1);
    expect(listenFailures.filter((l) => l.level >= 40)).toHaveLength(1);
    await eventually(() => logLines().some((l) => l.msg === 'LISTEN in force again'));
  });

  it('a login PostgreSQL refuses keeps jobs waiting, unsent, and the worker unhealthy once it lasts, until the login works', async () => {
    const own = await startTestApi({ WEBHOOK_CA_FILE: testCaFile() });
    const role = `mozhno_test_role_${randomBytes(4).toString('hex')}`;
    const refused = new URL(own.config.databaseUrl);
    refused.username = role; // no such role yet: every login is refused (28000)
    const locked = startDeliveryWorker({ ...own.config, databaseUrl: refused.toString() }, createLogger('silent'), { readRetryMs: 200, refusedUnhealthyAfterMs: 1_000 });
    try {
      await locked.worker.waitUntilReady();
      expect(locked.healthy()).toBe(true);
      const p = await own.project();
      await p.post('/api/v1/integrations', { name: 'refused', configJson: { url: `${sink.url}/refused` }, eventSubscriptionsJson: ['flag.created'] });
      await p.post('/api/v1/flags', { key: 'refused', name: 'Refused' });
      await eventually(async () => (await counter(locked.metrics.deferred)) >= 2 || undefined);
      await eventually(() => !locked.healthy() || undefined);
      expect(await own.server.queue.getJobCounts('failed')).toEqual({ failed: 0 });
      expect(sink.requests.filter((r) => r.path === '/refused')).toEqual([]);
      // The login works again (the role now exists): the waiting job goes out, and the worker is healthy.
      await adminQuery(`CREATE ROLE ${role} LOGIN SUPERUSER`);
      await eventually(() => sink.requests.some((r) => r.path === '/refused') || undefined, 15_000);
      await eventually(() => locked.healthy() || undefined);
    } finally {
      await locked.close();
      await own.close();
      await adminQuery(`DROP ROLE IF EXISTS ${role}`);
    }
  });

  it('a job whose integration cannot be read for another reason (a broken schema) fails, and is not put back', async () => {
    const { p } = await connect('bad-schema');
    const deferredBefore = await counter(worker.metrics.deferred);
    const failedBefore = (await api.server.queue.getJobCounts('failed')).failed!;
    await api.server.db.raw('ALTER TABLE integrations RENAME COLUMN body_template TO body_template_gone');
    try {
      await p.post('/api/v1/flags', { key: 'broken-schema', name: 'Broken schema' });
      await eventually(async () => (await api.server.queue.getJobCounts('failed')).failed! > failedBefore || undefined);
    } finally {
      await api.server.db.raw('ALTER TABLE integrations RENAME COLUMN body_template_gone TO body_template');
    }
    const [failed] = (await api.server.queue.getJobs(['failed'])).filter((j) => j.data.vars.resourceName === 'broken-schema');
    expect(failed!.failedReason).toMatch(/body_template/);
    expect(await counter(worker.metrics.deferred)).toBe(deferredBefore);
    expect(sink.requests.filter((r) => r.path === '/bad-schema')).toEqual([]);
  });

  it('an outcome waits for PostgreSQL when it went away during the POST, and is saved once it is back', async () => {
    const { p, integration, deliveries } = await connect('during-post');
    const failedBefore = (await api.server.queue.getJobCounts('failed')).failed;
    sink.respond((req, res) => {
      if (req.url === '/during-post') {
        proxy.cut();
        setTimeout(() => proxy.restore(), 1_500);
      }
      res.writeHead(200).end();
    });
    try {
      await p.post('/api/v1/flags', { key: 'cut-mid-delivery', name: 'Cut mid delivery' });
      const [record] = await eventually(async () => {
        const log = await deliveries();
        return log.length > 0 && log;
      }, 15_000);
      expect(record).toMatchObject({ status: 'success', httpStatus: 200 });
      // It was saved after waiting, not before the cut. (The record can be read a moment before the
      // worker, told its write committed, logs that PostgreSQL is back.)
      await eventually(() => {
        const messages = logLines().map((l) => l.msg);
        const waited = messages.indexOf('PostgreSQL unreachable; delivery outcomes wait for it');
        return waited >= 0 && messages.indexOf('PostgreSQL is back; delivery outcomes are saved again', waited) > waited;
      });
      // Its log line came when the attempt ended, not once it could be saved: an attempt is logged even if its record never is.
      const lines = logLines() as Array<{ msg: string; integrationId?: number }>;
      const logged = lines.findIndex((l) => l.msg === 'delivery' && l.integrationId === integration.id);
      expect(logged).toBeGreaterThanOrEqual(0);
      expect(logged).toBeLessThan(lines.findIndex((l) => l.msg === 'PostgreSQL is back; delivery outcomes are saved again'));
      expect((await p.get(`/api/v1/integrations/${integration.id}`)).body).toMatchObject({ lastDeliveryStatus: 'success' });
      expect(sink.requests.filter((r) => r.path === '/during-post')).toHaveLength(1);
      expect(await api.server.queue.getJobCounts('failed')).toEqual({ failed: failedBefore });
    } finally {
      sink.reset();
      proxy.restore();
    }
  });
});

describe('Redis refusing writes (a replica after a failover)', () => {
  let server: ChildProcess;
  let redis: Redis;
  const dir = mkdtempSync(join(tmpdir(), 'mozhno-readonly-'));
  beforeAll(async () => {
    // On a unix socket of its own: no TCP port another file could take meanwhile.
    const socket = join(dir, 'redis.sock');
    server = spawn('redis-server', ['--port', '0', '--unixsocket', socket, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    redis = new Redis({ path: socket, maxRetriesPerRequest: null });
    redis.on('error', () => undefined); // until the server listens, and after it is killed
    await eventually(async () => (await redis.ping().catch(() => '')) === 'PONG' || undefined);
  });
  afterAll(() => {
    redis?.disconnect();
    server?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('a slot release Redis refuses (READONLY) is kept and sent again, never an unhandled rejection', async () => {
    const limit = new InFlightLimit(redis, 'mozhno-test-readonly', 2, 60_000, () => undefined);
    expect(await limit.tryAcquire(1, 'job-a')).toBe(true);
    expect(await limit.inFlight(1)).toBe(1);

    await redis.replicaof('127.0.0.1', '1'); // a master nobody runs: read-only from now on
    await expect(redis.set('probe', '1')).rejects.toThrow(/READONLY/);
    limit.release(1, 'job-a'); // its timer's flush may fail first: the release must survive that too
    await expect(limit.flush()).rejects.toThrow(/READONLY/);
    expect(await limit.inFlight(1)).toBe(1);

    await redis.replicaof('NO', 'ONE');
    await eventually(async () => (await limit.inFlight(1)) === 0 || undefined, 5_000);
    expect(await limit.tryAcquire(1, 'job-b')).toBe(true);
  });
});

describe('PostgreSQL unreachable from the api', () => {
  it('answers 503 unavailable, not 500, and 200 again once it is back', async () => {
    const { proxy: apiProxy, url: proxied } = await proxyDatabase(api.config.databaseUrl);
    const second = await startApiServer({ ...api.config, databaseUrl: proxied, port: 0 }, createLogger('silent'), { host: '127.0.0.1' });
    try {
      const p = await api.project();
      const get = () => fetch(`${second.url}/api/v1/flags`, { headers: { authorization: `Bearer ${p.token}` } });
      expect((await get()).status).toBe(200);
      apiProxy.cut();
      const down = await get();
      expect(down.status).toBe(503);
      expect(await down.json()).toEqual({ error: { code: 'unavailable', message: 'the database cannot be reached; try again shortly' } });
      apiProxy.restore();
      await eventually(async () => (await get()).status === 200 || undefined);
    } finally {
      apiProxy.restore();
      await second.close();
      await apiProxy.close();
    }
  });
});

describe('PostgreSQL that takes connections but answers nothing, for a while', () => {
  it('a delivery outcome whose write hung past the patience is tried again, its patience counted from that failure', async () => {
    const { integration, deliveries } = await connect('hung-write');
    const { proxy: recorderProxy, url: proxied } = await proxyDatabase(api.config.databaseUrl);
    const db = createDb(proxied, { poolMax: 2, log: createLogger('silent') });
    // Patience shorter than the hang: counted from the first try, it was all used up by the time the write failed.
    const recorder = new OutcomeRecorder(db, createLogger('silent'), { retention: 100, patienceMs: 1_000 });
    const outcome = (eventId: number) => ({
      integrationId: integration.id,
      eventId,
      webhookId: `msg_hung_${eventId}`,
      action: 'flag.created',
      requestBody: '{}',
      result: { ok: true, httpStatus: 200, errorCode: null, error: null, address: '127.0.0.1', durationMs: 1, responseExcerpt: 'ok' } as const,
      at: new Date(),
    });
    try {
      await recorder.record(outcome(1)); // a pooled connection, warm
      recorderProxy.stall();
      const saved = recorder.record(outcome(2));
      // The write hangs for 2 s, longer than the patience, until its connection breaks; new ones then get through.
      setTimeout(() => {
        recorderProxy.cut();
        recorderProxy.restore();
      }, 2_000);
      await saved;
      expect((await deliveries()).map((d) => d.eventId).sort()).toEqual([1, 2]);
    } finally {
      await recorderProxy.close();
      await recorder.close();
      await db.destroy();
    }
  });
});

describe('a relay batch that fails after its jobs were added', () => {
  it('is tried again without adding them twice, even once BullMQ has forgotten the finished jobs', async () => {
    const { p } = await connect('relay-retry');
    const db = api.server.db;
    // The relay's COMMIT refused while fail_relay has a row: its jobs are in Redis, its events stay unqueued.
    await db.raw(`CREATE TABLE fail_relay (refuse boolean)`);
    await db.raw(`CREATE FUNCTION fail_relay() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF EXISTS (SELECT 1 FROM fail_relay) THEN RAISE EXCEPTION 'relay commit refused (test)'; END IF; RETURN NULL; END $$`);
    await db.raw(`CREATE CONSTRAINT TRIGGER fail_relay AFTER UPDATE ON events DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_relay()`);
    await db('fail_relay').insert({ refuse: true });
    try {
      await p.post('/api/v1/flags', { key: 'relayed-once', name: 'Relayed once' });
      const arrived = () => sink.requests.filter((r) => r.path === '/relay-retry').length;
      await eventually(() => arrived() === 1 || undefined);
      expect((await p.get('/api/v1/events')).body[0]).toMatchObject({ action: 'flag.created', queued: false });
      // BullMQ keeps finished jobs only so long (10 000 of them: seconds under load).
      await eventually(async () => (await api.server.queue.getJobCounts('completed')).completed! > 0 || undefined);
      await api.server.queue.clean(0, 100_000, 'completed');

      await db('fail_relay').delete();
      await eventually(async () => (await p.get('/api/v1/events')).body[0].queued === true || undefined, 15_000);
      await new Promise((resolve) => setTimeout(resolve, 1_500)); // time for a second delivery, were there one
      expect(arrived()).toBe(1);
    } finally {
      await db.raw('DROP TRIGGER IF EXISTS fail_relay ON events');
      await db.raw('DROP FUNCTION IF EXISTS fail_relay()');
      await db.raw('DROP TABLE IF EXISTS fail_relay');
    }
  });
});

describe('a relay batch stopped between adding its jobs and noting them (a killed api)', () => {
  const relayed = () => (api.server.relay as unknown as { relayed: RelayedEvents }).relayed;

  it('sends nothing twice on its next try, even once BullMQ has forgotten the finished jobs', async () => {
    const { p, deliveries } = await connect('relay-stopped');
    // The note after the add fails once, as a process killed there would leave things: jobs in Redis, events unqueued.
    const note = vi.spyOn(relayed(), 'note').mockRejectedValueOnce(new Error('killed before the note (test)'));
    try {
      await p.post('/api/v1/flags', { key: 'stopped-once', name: 'Stopped once' });
      const arrived = () => sink.requests.filter((r) => r.path === '/relay-stopped').length;
      await eventually(() => arrived() === 1 || undefined);
      await eventually(async () => (await deliveries()).length === 1 || undefined);
      // BullMQ keeps finished jobs only so long (10 000 of them: seconds under load).
      await api.server.queue.clean(0, 100_000, 'completed');
      await eventually(async () => (await p.get('/api/v1/events')).body[0].queued === true || undefined, 15_000);
      await new Promise((resolve) => setTimeout(resolve, 1_500)); // time for a second delivery, were there one
      expect(note).toHaveBeenCalledTimes(2);
      expect(arrived()).toBe(1);
      expect(await deliveries()).toHaveLength(1);
    } finally {
      note.mockRestore();
    }
  });

  it('still adds what the stopped try never added (its add failed after the mark)', async () => {
    const { p, deliveries } = await connect('relay-add-failed');
    const addBulk = vi.spyOn(api.server.queue, 'addBulk').mockRejectedValueOnce(new Error('Redis went away (test)'));
    try {
      await p.post('/api/v1/flags', { key: 'added-later', name: 'Added later' });
      await eventually(() => sink.requests.some((r) => r.path === '/relay-add-failed') || undefined, 15_000);
      await eventually(async () => (await p.get('/api/v1/events')).body[0].queued === true || undefined, 15_000);
      expect(addBulk.mock.calls.length).toBeGreaterThanOrEqual(2);
      await eventually(async () => (await deliveries()).length === 1 || undefined);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(sink.requests.filter((r) => r.path === '/relay-add-failed')).toHaveLength(1);
    } finally {
      addBulk.mockRestore();
    }
  });
});
