import { fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startDeliveryWorker } from '../../src/delivery/worker.js';
import { createLogger } from '../../src/logger.js';
import { startTestApi } from '../support/api.js';
import { eventually, startDeliveryHarness, type DeliveryHarness } from '../support/delivery.js';
import { startSink, testCaFile } from '../support/sink.js';
import { freePort } from '../support/ports.js';

const children = new Set<ChildProcess>();

/**
 * A worker process like `npm run worker`, checking for stalled jobs every second. A job's lock
 * lasts `lockMs`: short where a test kills a worker and waits for its job to be taken up again,
 * the production 30 s elsewhere — a lock that short expires whenever a loaded machine delays its
 * renewal, and the job then runs twice by design (that is what the stall check is for).
 */
async function startWorkerProcess(env: Record<string, string>, lockMs = 30_000): Promise<ChildProcess> {
  const child = fork('test/support/worker-process.ts', [], {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, ...env, LOG_LEVEL: 'silent', TEST_LOCK_MS: String(lockMs), TEST_STALL_MS: '1000' },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const [message] = (await Promise.race([once(child, 'message'), once(child, 'exit').then(() => ['exited'])])) as [string];
  if (message !== 'ready') throw new Error('worker process did not start');
  return child;
}

async function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const [code] = (await once(child, 'exit')) as [number | null];
  return code;
}

afterEach(async () => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
});

describe('several worker processes', () => {
  let h: DeliveryHarness;
  beforeAll(async () => {
    // Workers share the stall check (a key with the checker's interval as its TTL), so this one uses the short interval too.
    h = await startDeliveryHarness({ WEBHOOK_TIMEOUT_MS: '3000' }, { lockDurationMs: 1000, stalledIntervalMs: 1000 });
    await h.worker.close(); // only the worker processes below deliver here
  });
  afterAll(async () => {
    await h.sink.close();
    await h.api.close();
  });

  it('deliver every job exactly once between them', async () => {
    h.sink.reset();
    const workers = await Promise.all([startWorkerProcess(h.env), startWorkerProcess(h.env)]);
    const p = await h.api.project({ plan: 'pro' });
    const integrations = [];
    for (let i = 0; i < 4; i++) {
      integrations.push((await p.post('/api/v1/integrations', { name: `i${i}`, configJson: { url: `${h.sink.url}/i${i}` }, eventSubscriptionsJson: ['flag.created'] })).body.id);
    }
    const flags = 60;
    await Promise.all(Array.from({ length: flags }, (_, i) => p.post('/api/v1/flags', { key: `f${i}`, name: `F${i}` })));
    const expected = flags * integrations.length;
    await h.sink.waitForRequests(expected, 60_000);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const ids = h.sink.requests.map((r) => r.headers['webhook-id']);
    expect(ids).toHaveLength(expected);
    expect(new Set(ids).size).toBe(expected);
    // One record per delivery: nothing was sent (or recorded) twice.
    const rows = await h.api.server.db('deliveries').whereIn('integration_id', integrations);
    expect(rows).toHaveLength(expected);
    for (const worker of workers) worker.kill('SIGTERM');
    expect(await Promise.all(workers.map(exitOf))).toEqual([0, 0]);
  }, 90_000); // two processes to start under tsx and 240 deliveries: on a loaded 2-core machine, more than the default 30 s

  it('on SIGTERM stop taking jobs, finish the ones in flight, record them, and exit 0', async () => {
    h.sink.reset();
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    h.sink.respond(async (_req, res) => {
      await released;
      res.writeHead(200).end('finished after SIGTERM');
    });
    const worker = await startWorkerProcess(h.env, 2000);
    const p = await h.api.project();
    const integration = (await p.post('/api/v1/integrations', { name: 'slow', configJson: { url: `${h.sink.url}/slow` }, eventSubscriptionsJson: ['flag.created'] })).body;
    await p.post('/api/v1/flags', { key: 'first', name: 'First' });
    await h.sink.waitForRequests(1);

    worker.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 300));
    await p.post('/api/v1/flags', { key: 'second', name: 'Second' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(worker.exitCode).toBeNull(); // still finishing the first delivery
    release();
    expect(await exitOf(worker)).toBe(0);

    const log = (await p.get(`/api/v1/integrations/${integration.id}/deliveries`)).body;
    expect(log).toMatchObject([{ status: 'success', responseExcerpt: 'finished after SIGTERM' }]);
    // The second job was not taken: it waits for the next worker.
    expect(h.sink.requests).toHaveLength(1);
    expect(await h.api.server.queue.getWaitingCount()).toBe(1);
  });

  it('a worker killed mid-delivery: the job is delivered again once, with the same webhook-id', async () => {
    await h.api.server.queue.drain();
    h.sink.reset();
    let calls = 0;
    h.sink.respond((_req, res) => {
      calls += 1;
      if (calls === 1) return; // the first attempt hangs until its worker dies
      res.writeHead(200).end('ok');
    });
    const doomed = await startWorkerProcess(h.env, 2000);
    const p = await h.api.project();
    await p.post('/api/v1/integrations', { name: 'crash', configJson: { url: `${h.sink.url}/crash` }, eventSubscriptionsJson: ['flag.created'] });
    await p.post('/api/v1/flags', { key: 'crash', name: 'Crash' });
    const [first] = await h.sink.waitForRequests(1);
    doomed.kill('SIGKILL');
    await exitOf(doomed);

    await startWorkerProcess(h.env, 2000);
    const [, second] = await h.sink.waitForRequests(2, 15_000);
    expect(second!.headers['webhook-id']).toBe(first!.headers['webhook-id']);
    expect(second!.body).toBe(first!.body);
    // Taken up once, then done: no third attempt.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(h.sink.requests).toHaveLength(2);
  });
});

describe('Redis down during a write', () => {
  it('the API still succeeds, and the delivery arrives once Redis is back', async () => {
    const port = await freePort();
    const startRedis = async () => {
      const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
      children.add(redis);
      await eventually(() => canConnect(port), 10_000);
      return redis;
    };
    let redis = await startRedis();
    const sink = await startSink();
    const env = { REDIS_URL: `redis://127.0.0.1:${port}`, WEBHOOK_CA_FILE: testCaFile(), WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8' };
    const api = await startTestApi(env);
    const worker = startDeliveryWorker(api.config, createLogger('silent'));
    try {
      const p = await api.project();
      await p.post('/api/v1/integrations', { name: 'later', configJson: { url: `${sink.url}/later` }, eventSubscriptionsJson: ['flag.created'] });

      redis.kill('SIGKILL');
      await exitOf(redis);
      const answer = await p.post('/api/v1/flags', { key: 'while-down', name: 'While Redis is down' });
      expect(answer.status).toBe(201);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect((await p.get('/api/v1/events')).body[0]).toMatchObject({ action: 'flag.created', queued: false });
      expect(sink.requests).toEqual([]);

      redis = await startRedis();
      const [request] = await sink.waitForRequests(1, 20_000);
      expect(request!.path).toBe('/later');
      expect(request!.headers['webhook-id']).toMatch(/^msg_e\d+_i\d+$/);
      // The relay's transaction marks the event queued and commits a moment after its jobs are in Redis.
      const event = await eventually(async () => {
        const [newest] = (await p.get('/api/v1/events')).body;
        return newest.queued === true && newest;
      });
      expect(event).toMatchObject({ action: 'flag.created', queued: true, queuedAt: expect.any(String) });
    } finally {
      await worker.close();
      await api.close();
      await sink.close();
      redis.kill('SIGKILL');
    }
  });
});

describe('a worker told to stop while Redis is unreachable', () => {
  it('exits 1 after WEBHOOK_TIMEOUT_MS + 10 s instead of waiting for Redis for ever', async () => {
    const port = await freePort();
    const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    children.add(redis);
    await eventually(() => canConnect(port), 10_000);
    const api = await startTestApi({ REDIS_URL: `redis://127.0.0.1:${port}` }); // a migrated database
    const worker = spawn(process.execPath, ['--import', 'tsx', 'workers/delivery-worker.ts'], {
      env: { ...process.env, DATABASE_URL: api.config.databaseUrl, REDIS_URL: `redis://127.0.0.1:${port}`, QUEUE_PREFIX: 'mozhno-test-stop', WEBHOOK_TIMEOUT_MS: '1000', WORKER_METRICS_PORT: '0', LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.add(worker);
    let out = '';
    worker.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    try {
      await eventually(() => out.includes('"msg":"worker started"') || undefined, 30_000);
      redis.kill('SIGKILL');
      await exitOf(redis);
      const asked = Date.now();
      worker.kill('SIGTERM');
      expect(await exitOf(worker)).toBe(1);
      const took = Date.now() - asked;
      expect(took).toBeGreaterThanOrEqual(10_000); // it did wait for the deadline, not exit at once
      expect(out).toContain('worker did not stop within 11 s');
    } finally {
      await api.close();
    }
  }, 60_000);
});

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
