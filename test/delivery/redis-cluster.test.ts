import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { eventually, startDeliveryHarness, type DeliveryHarness } from '../support/delivery.js';

/** A real three-node Redis Cluster on loopback, made for this file (cluster bus on port + 10000). */
const nodes: ChildProcess[] = [];
const dir = mkdtempSync(`${tmpdir()}/mozhno-cluster-`);
let ports: number[] = [];
let h: DeliveryHarness;

beforeAll(async () => {
  ports = await clusterPorts(3);
  for (const port of ports) {
    nodes.push(
      spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--dir', dir, '--save', '', '--appendonly', 'no'],
        { stdio: 'ignore' },
      ),
    );
  }
  await eventually(() => ports.every((port) => ping(port)), 10_000);
  execFileSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'ignore' });
  await eventually(() => execFileSync('redis-cli', ['-p', String(ports[0]), 'cluster', 'info']).toString().includes('cluster_state:ok'), 15_000);

  h = await startDeliveryHarness({
    REDIS_URL: `redis://127.0.0.1:${ports[1]}`,
    REDIS_CLUSTER: 'true',
    QUEUE_PREFIX: `{mz-${randomBytes(3).toString('hex')}}`,
    WEBHOOK_MAX_IN_FLIGHT: '2',
  });
}, 60_000);

afterAll(async () => {
  await h?.close();
  for (const node of nodes) node.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

it('delivers through a Redis Cluster, queue and in-flight keys sharing the prefix\'s hash slot', async () => {
  const p = await h.api.project();
  await p.post('/api/v1/integrations', { name: 'cluster', configJson: { url: `${h.sink.url}/cluster` }, eventSubscriptionsJson: ['flag.created', 'flag.updated'] });
  const flag = (await p.post('/api/v1/flags', { key: 'c', name: 'C' })).body;
  for (let i = 0; i < 10; i++) await p.put(`/api/v1/flags/${flag.id}`, { name: `C${i}` });
  const requests = await h.sink.waitForRequests(11, 15_000);
  expect(new Set(requests.map((r) => r.headers['webhook-id'])).size).toBe(11);

  const test = await p.post(`/api/v1/integrations/${(await p.get('/api/v1/integrations')).body[0].id}/test`);
  expect(test.status).toBe(202);
  await h.sink.waitForRequests(12);
  expect((await fetch(`${h.api.server.url}/readyz`)).status).toBe(200);
});

it('parks a backlog through the cluster too: the relay queues it straight into line, and releases wake it', async () => {
  const held: Array<() => void> = [];
  h.sink.reset();
  h.sink.respond((req, res) => {
    if (req.url === '/hold') held.push(() => res.writeHead(200).end('ok'));
    else res.writeHead(200).end('ok');
  });
  try {
    const p = await h.api.project();
    const integration = (await p.post('/api/v1/integrations', { name: 'held', configJson: { url: `${h.sink.url}/hold` }, eventSubscriptionsJson: ['segment.created'] })).body;
    const segment = (i: number) => p.post('/api/v1/segments', { key: `h${i}`, name: `H${i}`, conditions: [] });
    const delayed = async () => (await h.api.server.queue.getJobs(['delayed'])).filter((j) => j.data.integrationId === integration.id);
    for (let i = 0; i < 3; i++) await segment(i);
    await eventually(async () => held.length === 2 && (await delayed()).length === 1);
    for (let i = 3; i < 8; i++) await segment(i);
    const waiting = await eventually(async () => {
      const jobs = await delayed();
      return jobs.length === 6 && jobs;
    });
    expect(waiting.filter((j) => !j.processedOn)).toHaveLength(5); // queued parked by the relay, never taken by a worker

    for (const answer of held.splice(0)) answer();
    h.sink.respond((_req, res) => res.writeHead(200).end('ok'));
    await eventually(async () => h.sink.requests.filter((r) => r.path === '/hold').length === 8 && (await delayed()).length === 0, 15_000);
  } finally {
    for (const answer of held.splice(0)) answer();
    h.sink.reset();
  }
});

it('refuses a QUEUE_PREFIX without a hash tag in cluster mode', () => {
  expect(() => loadConfig({ REDIS_CLUSTER: 'true', QUEUE_PREFIX: 'mozhno' })).toThrow(/QUEUE_PREFIX: must start with a \{hash-tag\} when REDIS_CLUSTER is true, e\.g\. \{mozhno\}/);
  expect(() => loadConfig({ REDIS_CLUSTER: 'maybe' })).toThrow(/REDIS_CLUSTER: must be true or false/);
});

function ping(port: number): boolean {
  try {
    return execFileSync('redis-cli', ['-p', String(port), 'ping']).toString().trim() === 'PONG';
  } catch {
    return false;
  }
}

/** Free ports whose cluster-bus twin (port + 10000) is free too. */
async function clusterPorts(count: number): Promise<number[]> {
  const found: number[] = [];
  while (found.length < count) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if ((await isFree(port)) && (await isFree(port + 10_000)) && !found.includes(port)) found.push(port);
  }
  return found;
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
