import { Queue } from 'bullmq';
import type { Pool } from 'undici';
import { WORKER_THREAD_POOL_SIZE } from '../../src/config.js';
import { QUEUE_NAME } from '../../src/delivery/queue.js';
import { freePort as unusedPort } from '../../test/support/ports.js';
import { ApiClient } from './api-client.js';
import type { Bench, BenchProject } from './bench.js';
import { Child, unlessAChildCrashes } from './children.js';
import { waitFor } from './clock.js';
import { integrationBody } from './workload.js';

export interface StackOptions {
  /** Worker processes to start with. */
  workers: number;
  /** Environment on top of the bench's (e.g. a lower WEBHOOK_TIMEOUT_MS). */
  env?: Record<string, string>;
  /** How long SIGTERM may take before SIGKILL (workers wait for deliveries in flight). */
  stopGraceMs?: number;
}

/**
 * The product as operators run it: one `node --import tsx src/api.ts` and N
 * `node --import tsx workers/delivery-worker.ts` processes on a queue prefix of
 * their own, sharing the run's database. Whatever the entry points do today is
 * what gets measured.
 */
export class Stack {
  readonly workers: Child[] = [];
  private readonly pool: Pool;
  private readonly queue: Queue;

  private constructor(
    private readonly bench: Bench,
    readonly api: Child,
    readonly apiUrl: string,
    readonly prefix: string,
    private readonly env: Record<string, string | undefined>,
    private readonly stopGraceMs: number,
  ) {
    this.pool = ApiClient.pool(apiUrl);
    this.queue = new Queue(QUEUE_NAME, { connection: bench.redis, prefix });
  }

  static async start(bench: Bench, options: StackOptions): Promise<Stack> {
    const prefix = bench.newQueuePrefix();
    const port = await freePort();
    const { settings } = bench;
    const env: Record<string, string | undefined> = {
      ...process.env,
      DATABASE_URL: bench.databaseUrl,
      REDIS_URL: bench.redisUrl,
      QUEUE_PREFIX: prefix,
      WEBHOOK_CA_FILE: bench.caFile,
      WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8',
      LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
      PLAN_LIMITS: JSON.stringify({ free: 3, pro: 20, enterprise: 1000 }),
      WORKER_CONCURRENCY: String(settings.concurrency),
      ...options.env,
    };
    const api = new Child(`api (${prefix})`, 'src/api.ts', { kind: 'api', env: { ...env, PORT: String(port) }, nodeArgs: settings.nodeArgs });
    const stack = new Stack(bench, api, `http://127.0.0.1:${port}`, prefix, env, options.stopGraceMs ?? 10_000);
    await Promise.all([stack.apiListening(), stack.setWorkers(options.workers)]);
    return stack;
  }

  /** Starts or stops worker processes until `n` run, and waits until each is taking jobs. */
  async setWorkers(n: number): Promise<void> {
    while (this.workers.length > n) await this.workers.pop()!.stop(this.stopGraceMs);
    while (this.workers.length < n) {
      const metricsPort = await freePort();
      this.workers.push(
        new Child(`worker ${this.workers.length + 1} (${this.prefix})`, 'workers/delivery-worker.ts', {
          kind: 'worker',
          // Started as `npm run worker` starts it.
          env: { UV_THREADPOOL_SIZE: String(WORKER_THREAD_POOL_SIZE), ...this.env, WORKER_METRICS_PORT: String(metricsPort) },
          nodeArgs: this.bench.settings.nodeArgs,
        }),
      );
    }
    // BullMQ names each worker's Redis connection; CLIENT LIST tells when all are blocking on the queue.
    await unlessAChildCrashes(waitFor(`${n} worker process(es) taking jobs`, async () => (await this.queue.getWorkersCount()) >= n, 60_000, 100));
  }

  get workerPids(): number[] {
    return this.workers.map((worker) => worker.pid);
  }

  client(project: BenchProject): ApiClient {
    return new ApiClient(this.pool, project.token);
  }

  /** Creates integrations through the API (`POST /api/v1/integrations`), a few at a time; answers their ids. */
  async createIntegrations(project: BenchProject, urls: string[], events: string[]): Promise<number[]> {
    const client = this.client(project);
    const ids: number[] = new Array(urls.length);
    let next = 0;
    const createSome = async () => {
      while (next < urls.length) {
        const i = next++;
        const answer = await client.expect(201, 'POST', '/api/v1/integrations', integrationBody(`bench ${i}`, urls[i]!, events));
        ids[i] = answer.body.id as number;
      }
    };
    await unlessAChildCrashes(Promise.all(Array.from({ length: 4 }, createSome)));
    return ids;
  }

  /**
   * A new project with `count` integrations subscribed to flag.updated, each posting to its own
   * path of the sink group `<label>-<project id>`; the first `hanging` go to paths the sink never
   * answers.
   */
  async sinkProject(label: string, count: number, hanging = 0): Promise<{ project: BenchProject; group: string }> {
    const project = await this.bench.project(label);
    const group = `${label}-${project.projectId}`;
    const urls = Array.from({ length: count }, (_, i) => `${this.bench.sink.url}/${i < hanging ? `hang-${group}` : group}/i${i}`);
    await this.createIntegrations(project, urls, ['flag.updated']);
    return { project, group };
  }

  /** SIGTERM to every process (SIGKILL after the grace period), then the prefix's Redis keys go. */
  async stop(): Promise<void> {
    await Promise.all([this.api.stop(this.stopGraceMs), ...this.workers.map((worker) => worker.stop(this.stopGraceMs))]);
    await this.pool.close();
    await this.queue.close();
    await this.bench.deleteKeys(`${this.prefix}:`);
  }

  /** Any HTTP answer (health route or not) means the api listens, and it listens only once its relay runs. */
  private async apiListening(): Promise<void> {
    await unlessAChildCrashes(
      waitFor(
        `${this.api.name} listening`,
        async () => {
          try {
            const response = await this.pool.request({ method: 'GET', path: '/healthz' });
            await response.body.dump();
            return true;
          } catch {
            return false;
          }
        },
        60_000,
        100,
      ),
    );
  }
}

/** Ports this run has handed out: a port released by `freePort` is free again until its child binds it. */
const handedOut = new Set<number>();

/**
 * A port free right now on loopback and not handed out before in this run: the api and
 * the workers' metrics servers start at the same time, and the kernel may offer a port
 * just released twice. (Another process could still take it before the child binds it.)
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await unusedPort();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}
