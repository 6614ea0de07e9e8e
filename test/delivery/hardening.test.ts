import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { Job, Queue } from 'bullmq';
import type { ResolvedAddress } from '../../src/delivery/http-client.js';
import { Parking, wasParked } from '../../src/delivery/parking.js';
import type { DeliveryJobData } from '../../src/delivery/queue.js';
import { createLogger } from '../../src/logger.js';
import { flagCreatedJob, startDeliveryHarness, type DeliveryHarness } from '../support/delivery.js';
import { startSink, type Sink } from '../support/sink.js';
import { REDIS_URL } from '../support/env.js';

/** What the worker's resolver answers for each name; tests change it. */
const dns = new Map<string, ResolvedAddress[]>();
const lookup = async (hostname: string): Promise<ResolvedAddress[]> => {
  const answer = dns.get(hostname);
  if (!answer) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
  return answer;
};

let h: DeliveryHarness;
let hanging: Sink;
let open = 0;
let maxOpen = 0;
let answerHanging = false;

beforeAll(async () => {
  h = await startDeliveryHarness({ WEBHOOK_MAX_IN_FLIGHT: '2', WEBHOOK_MAX_BACKLOG: '64', WORKER_CONCURRENCY: '10', WEBHOOK_TIMEOUT_MS: '3000' }, { lookup });
  hanging = await startSink();
  hanging.respond((req, res) => {
    open += 1;
    maxOpen = Math.max(maxOpen, open);
    res.once('close', () => (open -= 1));
    if (answerHanging) res.writeHead(200).end('ok');
    // otherwise never answers: each attempt runs into WEBHOOK_TIMEOUT_MS
  });
});
afterAll(async () => {
  await hanging.close();
  await h.close();
});

/** A sink that holds its answers (200 each) until `answer()`; from then on it answers at once. */
async function heldSink() {
  const stuck = await startSink();
  const held: Array<() => void> = [];
  let holding = true;
  stuck.respond((_req, res) => {
    if (holding) held.push(() => res.writeHead(200).end('ok'));
    else res.writeHead(200).end('ok');
  });
  const answer = (): void => {
    holding = false;
    for (const respond of held.splice(0)) respond();
  };
  return { stuck, answer };
}

describe('one hanging endpoint cannot starve the others', () => {
  it('holds at most WEBHOOK_MAX_IN_FLIGHT deliveries of it across worker processes, while healthy deliveries flow', async () => {
    const second: ChildProcess = fork('test/support/worker-process.ts', [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, ...h.env, WEBHOOK_MAX_IN_FLIGHT: '2', WORKER_CONCURRENCY: '10', WEBHOOK_TIMEOUT_MS: '3000', LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    try {
      await once(second, 'message');
      const p = await h.api.project({ plan: 'pro' });
      const slow = (
        await p.post('/api/v1/integrations', { name: 'hangs', configJson: { url: `${hanging.url}/hang` }, eventSubscriptionsJson: ['segment.created'] })
      ).body;
      for (const name of ['a', 'b']) {
        await p.post('/api/v1/integrations', { name, configJson: { url: `${h.sink.url}/${name}` }, eventSubscriptionsJson: ['flag.created'] });
      }

      // The backlog for the hanging endpoint is queued first, ahead of every healthy job.
      const backlog = 60;
      for (let i = 0; i < backlog; i++) await p.post('/api/v1/segments', { key: `s${i}`, name: `S${i}`, conditions: [] });
      await h.eventually(() => hanging.requests.length >= 2 || undefined);
      for (let i = 0; i < 20; i++) await p.post('/api/v1/flags', { key: `f${i}`, name: `F${i}` });

      // All 40 healthy deliveries arrive while the hanging endpoint still holds its first attempts.
      await h.sink.waitForRequests(40, 5_000);
      expect(maxOpen).toBeLessThanOrEqual(2);
      expect(hanging.requests.length).toBeLessThan(backlog);
      expect(await h.api.server.queue.getDelayedCount()).toBeGreaterThan(0); // parked, holding no worker slot

      // Once the endpoint answers again, releases wake the parked jobs one after another (long before their safety delay).
      answerHanging = true;
      await h.eventually(async () => {
        const [row] = await h.api.server.db('deliveries').where('integration_id', slow.id).count({ n: '*' });
        return Number(row!.n) === backlog || undefined;
      }, 20_000);
      expect(maxOpen).toBeLessThanOrEqual(2);
      const webhookIds = hanging.requests.map((r) => r.headers['webhook-id']);
      expect(new Set(webhookIds).size).toBe(backlog);
    } finally {
      second.kill('SIGKILL');
    }
  });
});

describe('an endpoint that lets deliveries run into the timeout', () => {
  it('gets one delivery at a time, not WEBHOOK_MAX_IN_FLIGHT, until one is answered: many of them cannot fill the workers', async () => {
    // Holds its answers until `answer()`, counting the requests open as each arrives.
    const stuck = await startSink();
    const held: Array<() => void> = [];
    let holding = true;
    let open = 0;
    const openAtArrival: number[] = [];
    stuck.respond((_req, res) => {
      openAtArrival.push(++open);
      res.once('close', () => (open -= 1));
      if (holding) held.push(() => res.writeHead(200).end('ok'));
      else res.writeHead(200).end('ok');
    });
    const answer = (): void => {
      holding = false;
      for (const respond of held.splice(0)) respond();
    };
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    const limit = new Parking(redis, h.api.server.queue, h.api.config, createLogger('silent')).limit;
    try {
      const p = await h.api.project({ plan: 'pro' });
      const integration = (await p.post('/api/v1/integrations', { name: 'times out', configJson: { url: `${stuck.url}/t` }, eventSubscriptionsJson: ['segment.created'] })).body;
      const records = async () => (await h.api.server.db('deliveries').where('integration_id', integration.id).orderBy('id').pluck('error_code')) as Array<string | null>;
      for (let i = 0; i < 6; i++) await p.post('/api/v1/segments', { key: `t${i}`, name: `T${i}`, conditions: [] });

      // Two go out at once (WEBHOOK_MAX_IN_FLIGHT 2) and run into WEBHOOK_TIMEOUT_MS (3 s).
      await h.eventually(async () => (await records()).length === 2, 10_000);
      expect(await records()).toEqual(['E_TIMEOUT', 'E_TIMEOUT']);
      await h.eventually(() => limit.slow(integration.id)); // marked as the timeouts' slots are released
      // From then on one at a time: the fourth request only goes once the third has timed out too.
      await h.eventually(() => stuck.requests.length === 4 || undefined, 10_000);
      expect(openAtArrival.slice(0, 4)).toEqual([1, 2, 1, 1]);
      expect(await records()).toEqual(['E_TIMEOUT', 'E_TIMEOUT', 'E_TIMEOUT']);

      // The endpoint answers the fourth: the mark is lifted, and the rest go out.
      answer();
      await h.eventually(async () => (await records()).length === 6 || undefined, 10_000);
      expect(await records()).toEqual(['E_TIMEOUT', 'E_TIMEOUT', 'E_TIMEOUT', null, null, null]);
      expect(await limit.slow(integration.id)).toBe(false);
    } finally {
      answer();
      await stuck.close();
      redis.disconnect();
    }
  });
});

describe('a backlog for a slow endpoint', () => {
  it('queues the new jobs of an integration with jobs waiting straight into line: no worker takes them until slots free', async () => {
    const { stuck, answer } = await heldSink();
    try {
      const p = await h.api.project({ plan: 'pro' });
      const integration = (await p.post('/api/v1/integrations', { name: 'stuck', configJson: { url: `${stuck.url}/stuck` }, eventSubscriptionsJson: ['segment.created'] })).body;
      const jobsOf = async (state: 'delayed' | 'completed') => (await h.api.server.queue.getJobs([state])).filter((j) => j.data.integrationId === integration.id);
      const parkedAtQueue = async () => (await h.api.server.metrics.jobsQueuedParked.get()).values[0]?.value ?? 0;
      const before = await parkedAtQueue();

      // Two deliveries take the slots (WEBHOOK_MAX_IN_FLIGHT 2); the third is taken by the worker and parked.
      const segment = (i: number) => p.post('/api/v1/segments', { key: `w${i}`, name: `W${i}`, conditions: [] });
      for (let i = 0; i < 3; i++) await segment(i);
      await h.eventually(async () => stuck.requests.length === 2 && (await jobsOf('delayed')).length === 1);

      // The next ten join the line as they are queued: none of them is ever taken by a worker meanwhile.
      for (let i = 3; i < 13; i++) await segment(i);
      // The metric counts a relay batch once it commits, a moment after its jobs are visible in Redis.
      const waiting = await h.eventually(async () => {
        const delayed = await jobsOf('delayed');
        return delayed.length === 11 && (await parkedAtQueue()) - before >= 10 && delayed;
      });
      const neverTaken = waiting.filter((j) => j.processedOn === undefined || j.processedOn === null);
      expect(neverTaken).toHaveLength(10);
      expect(Math.min(...neverTaken.map((j) => j.data.eventId!))).toBeGreaterThan(waiting.find((j) => !neverTaken.includes(j))!.data.eventId!);
      expect((await parkedAtQueue()) - before).toBe(10);
      expect(stuck.requests).toHaveLength(2);

      // The endpoint answers again: releases wake the line (long before the jobs' safety delay of ~23 s), each delivered once.
      answer();
      await h.eventually(async () => (await jobsOf('completed')).length === 13 || undefined, 15_000);
      expect(new Set(stuck.requests.map((r) => r.headers['webhook-id'])).size).toBe(13);
      expect(await jobsOf('delayed')).toEqual([]);
    } finally {
      answer();
      await stuck.close();
    }
  });
});

describe('a line of WEBHOOK_MAX_BACKLOG (64 here)', () => {
  it('fails the deliveries that would wait behind a full line unsent (E_BACKLOG), at once, and delivers the line when the endpoint answers', async () => {
    const { stuck, answer } = await heldSink();
    try {
      const p = await h.api.project({ plan: 'pro' });
      const integration = (await p.post('/api/v1/integrations', { name: 'full', configJson: { url: `${stuck.url}/full` }, eventSubscriptionsJson: ['segment.created'] })).body;
      const delayed = async () => (await h.api.server.queue.getJobs(['delayed'])).filter((j) => j.data.integrationId === integration.id).length;
      const records = async () =>
        (await h.api.server.db('deliveries').where('integration_id', integration.id).select('status', 'error_code as errorCode', 'error')) as Array<{ status: string; errorCode: string | null; error: string | null }>;
      const segment = (i: number) => p.post('/api/v1/segments', { key: `full${i}`, name: `Full ${i}`, conditions: [] });

      // Two take the slots; the next 64 fill the line (never more than 64 in it: there are no more yet).
      await segment(0);
      await segment(1);
      await h.eventually(() => stuck.requests.length === 2);
      for (let i = 2; i < 66; i++) await segment(i);
      await h.eventually(async () => (await delayed()) === 64);
      // Three more, one at a time: each fails unsent at once, and the line stays 64 long. Counted as
      // failed deliveries, without a duration: nothing was sent.
      const metric = async (name: string, labels: Record<string, string>) =>
        (await h.worker.metrics.registry.getSingleMetric(name)!.get()).values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value ?? 0;
      const failedDurations = await metric('mozhno_delivery_duration_seconds', { result: 'failure' });
      const backlogCountBefore = await metric('mozhno_deliveries_total', { result: 'failure', code: 'E_BACKLOG' });
      for (let i = 66; i < 69; i++) {
        await segment(i);
        await h.eventually(async () => (await records()).filter((r) => r.errorCode === 'E_BACKLOG').length === i - 65);
      }
      expect(await delayed()).toBe(64);
      expect((await metric('mozhno_deliveries_total', { result: 'failure', code: 'E_BACKLOG' })) - backlogCountBefore).toBe(3);
      expect(await metric('mozhno_delivery_duration_seconds', { result: 'failure' })).toBe(failedDurations);
      // A job its integration no longer wants (here: an event it is not subscribed to) is dropped, not refused.
      const unwanted = await h.api.server.queue.add('flag.created', flagCreatedJob(integration, p.projectId, 999_999, 'msg_unwanted'));
      expect(await h.eventually(async () => (await unwanted.isCompleted()) && (await h.api.server.queue.getJob(unwanted.id!))!.returnvalue)).toBe('dropped: integration no longer subscribed');
      const refused = (await records()).filter((r) => r.errorCode === 'E_BACKLOG');
      expect(refused.map((r) => [r.status, r.error])).toEqual(
        Array(3).fill(['failure', 'backlog: 64 deliveries already wait for this endpoint (WEBHOOK_MAX_BACKLOG 64); not sent']),
      );
      expect((await p.get(`/api/v1/integrations/${integration.id}`)).body.lastError).toMatch(/^backlog: 64 deliveries/);
      expect(stuck.requests).toHaveLength(2);

      // The endpoint answers again: the two in flight and the 64 in line are delivered, the three refused never.
      answer();
      await h.eventually(async () => (await records()).filter((r) => r.status === 'success').length === 66 || undefined, 20_000);
      expect(stuck.requests).toHaveLength(66);
      expect(await delayed()).toBe(0);
    } finally {
      answer();
      await stuck.close();
    }
  });
});

describe('a long line for a hanging endpoint', () => {
  it('a job taken again after its safety delay, its line still waiting, parks for twice as long (up to 16×)', async () => {
    // Both slots of the integration held for minutes, as two deliveries to a hanging endpoint would hold them.
    // Through a Parking of its own, so the releases below wake the line as a worker's would.
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    const parking = new Parking(redis, h.api.server.queue, { ...h.api.config, webhookTimeoutMs: 600_000 }, createLogger('silent'));
    const holders = parking.limit;
    try {
      const p = await h.api.project({ plan: 'pro' });
      const integration = (await p.post('/api/v1/integrations', { name: 'slow line', configJson: { url: `${h.sink.url}/line` }, eventSubscriptionsJson: ['segment.created'] })).body;
      // (hanging-2 is left to its lease; the file's queue prefix goes when the harness closes.)
      expect([await holders.tryAcquire(integration.id, 'hanging-1'), await holders.tryAcquire(integration.id, 'hanging-2')]).toEqual([true, true]);
      await p.post('/api/v1/segments', { key: 'l', name: 'L', conditions: [] });
      const parked = async (timesTaken: number) =>
        h.eventually(async () => {
          const [job] = (await h.api.server.queue.getJobs(['delayed'])).filter((j) => j.data.integrationId === integration.id);
          return job?.attemptsStarted === timesTaken && job;
        });
      // WEBHOOK_TIMEOUT_MS 3000: a lease of 18 s, a safety delay of 23 s the first time.
      const delays: number[] = [];
      for (let taken = 1; taken <= 6; taken++) {
        const job = await parked(taken);
        delays.push(Math.round(job.delay / 1000));
        await job.promote(); // as its safety delay running out would: the worker takes it, finds no slot, parks it again
      }
      expect(delays).toEqual([23, 46, 92, 184, 368, 368]);
      expect(h.sink.requests.filter((r) => r.path === '/line')).toEqual([]);

      // Parked for 368 s now; a slot frees: the release wakes the job at once, whatever its safety delay.
      await parked(7);
      holders.release(integration.id, 'hanging-1');
      await holders.flush();
      await h.eventually(() => h.sink.requests.some((r) => r.path === '/line'), 5_000);
    } finally {
      await parking.close().catch(() => undefined);
      redis.disconnect();
    }
  });

  it('a job the relay or a worker parked may still be in its line, so it never takes a slot a worker kept', async () => {
    // The worker's kept slots (KEEP_SLOT_MS) are taken without Redis, which would leave such a job listed as waiting.
    const connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    const queue = new Queue<DeliveryJobData>('kept-slot-check', { connection, prefix: h.api.config.queuePrefix });
    try {
      const data = flagCreatedJob({ id: 1 }, 1, 1, 'msg_kept');
      const plain = await queue.add('d', data);
      const queuedParked = await queue.add('d', data, { delay: 60_000 });
      const workerParked = await queue.add('d', { ...data, parks: 1 });
      expect([plain, queuedParked, workerParked].map((job) => wasParked(job))).toEqual([false, true, true]);
      // As the worker sees them, read back from Redis once woken (promoted), which sets BullMQ's own `delay` back to 0.
      await queuedParked.promote();
      const read = await Promise.all([plain, queuedParked, workerParked].map((job) => Job.fromId<DeliveryJobData>(queue, job.id!)));
      expect(read[1]!.delay).toBe(0);
      expect(read.map((job) => wasParked(job!))).toEqual([false, true, true]);
    } finally {
      await queue.obliterate({ force: true });
      await queue.close();
      connection.disconnect();
    }
  });
});

describe('SSRF guard at send time', () => {
  async function integrationFor(url: string) {
    const p = await h.api.project();
    const integration = (await p.post('/api/v1/integrations', { name: 'guarded', configJson: { url }, eventSubscriptionsJson: ['flag.created'] })).body;
    expect(integration.id).toEqual(expect.any(Number));
    return { p, integration };
  }

  async function lastDelivery(p: Awaited<ReturnType<typeof integrationFor>>['p'], id: number) {
    const [record] = await h.eventually(async () => {
      const log = (await p.get(`/api/v1/integrations/${id}/deliveries`)).body;
      return log.length > 0 && log;
    });
    return record;
  }

  it('refuses a name that resolves to a private address: nothing is sent', async () => {
    dns.set('private.sink.test', [{ address: '10.0.0.5', family: 4 }]);
    const { p, integration } = await integrationFor(`https://private.sink.test:${h.sink.port}/x`);
    h.sink.reset();
    await p.post('/api/v1/flags', { key: 'f', name: 'F' });
    const record = await lastDelivery(p, integration.id);
    expect(record).toMatchObject({ status: 'failure', errorCode: 'E_BLOCKED', address: null, error: 'blocked: resolves to 10.0.0.5, which is a private address' });
    expect((await p.get(`/api/v1/integrations/${integration.id}`)).body.lastError).toBe(record.error);
    expect(h.sink.requests).toEqual([]);
  });

  it('refuses a name with any forbidden address among allowed ones', async () => {
    dns.set('mixed.sink.test', [
      { address: '127.0.0.1', family: 4 },
      { address: '169.254.169.254', family: 4 },
    ]);
    const { p, integration } = await integrationFor(`https://mixed.sink.test:${h.sink.port}/x`);
    h.sink.reset();
    await p.post('/api/v1/flags', { key: 'f', name: 'F' });
    const record = await lastDelivery(p, integration.id);
    expect(record).toMatchObject({ errorCode: 'E_BLOCKED', error: expect.stringContaining('169.254.169.254') });
    expect(h.sink.requests).toEqual([]);
  });

  it('guards the test send the same way', async () => {
    dns.set('metadata.sink.test', [{ address: 'fd00:ec2::254', family: 6 }]);
    const { p, integration } = await integrationFor(`https://metadata.sink.test:${h.sink.port}/x`);
    expect((await p.post(`/api/v1/integrations/${integration.id}/test`)).status).toBe(202);
    const record = await lastDelivery(p, integration.id);
    expect(record).toMatchObject({ action: 'integration.test', errorCode: 'E_BLOCKED', error: 'blocked: resolves to fd00:ec2::254, which is a cloud metadata address' });
  });

  it('delivers to an allowed name, with SNI and the certificate checked against the name', async () => {
    dns.set('ok.sink.test', [{ address: '127.0.0.1', family: 4 }]);
    const { p, integration } = await integrationFor(`https://ok.sink.test:${h.sink.port}/ok`);
    h.sink.reset();
    await p.post('/api/v1/flags', { key: 'f', name: 'F' });
    const [request] = await h.sink.waitForRequests(1);
    expect(request!.servername).toBe('ok.sink.test');
    expect(await lastDelivery(p, integration.id)).toMatchObject({ status: 'success', address: '127.0.0.1' });
  });

  it('reports a name that does not resolve as E_DNS', async () => {
    const { p, integration } = await integrationFor(`https://nowhere.sink.test:${h.sink.port}/x`);
    await p.post('/api/v1/flags', { key: 'f', name: 'F' });
    const record = await lastDelivery(p, integration.id);
    expect(record).toMatchObject({ errorCode: 'E_DNS', error: expect.stringMatching(/^DNS: /) });
  });
});
