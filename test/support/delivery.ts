import type { DeliveryJobData } from '../../src/delivery/queue.js';
import { startDeliveryWorker, type DeliveryWorker, type DeliveryWorkerOptions } from '../../src/delivery/worker.js';
import { createLogger, type Logger } from '../../src/logger.js';
import { startTestApi, type TestApi } from './api.js';
import { startSink, testCaFile, type Sink } from './sink.js';

export interface DeliveryHarness {
  api: TestApi;
  /** The in-process worker; tests that need worker processes start their own. */
  worker: DeliveryWorker;
  sink: Sink;
  /** The environment the api and worker run with, for starting worker processes alike. */
  env: Record<string, string>;
  /** Polls until `check` returns a value that is not undefined/false, or fails after `timeoutMs`. */
  eventually<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs?: number): Promise<T>;
  close(): Promise<void>;
}

/** An api, a worker and an HTTPS sink with the run's test CA: everything a delivery needs, on loopback. */
export async function startDeliveryHarness(
  env: Record<string, string> = {},
  workerOptions: DeliveryWorkerOptions = {},
  log: Logger = createLogger('silent'),
): Promise<DeliveryHarness> {
  const sink = await startSink();
  const fullEnv = { WEBHOOK_CA_FILE: testCaFile(), WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8', WORKER_CONCURRENCY: '20', ...env };
  const api = await startTestApi(fullEnv, { log });
  const worker = startDeliveryWorker(api.config, log, workerOptions);
  await worker.worker.waitUntilReady();
  return {
    api,
    worker,
    sink,
    env: {
      ...fullEnv,
      DATABASE_URL: api.config.databaseUrl,
      REDIS_URL: api.config.redisUrl,
      QUEUE_PREFIX: api.config.queuePrefix,
    },
    eventually,
    async close() {
      try {
        try {
          await worker.close();
        } finally {
          await sink.close();
        }
      } finally {
        await api.close();
      }
    },
  };
}

export async function eventually<T>(check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The data of a `flag.created` delivery job, for tests that put one straight on the queue. */
export function flagCreatedJob(integration: { id: number; version?: number }, projectId: number, eventId: number, webhookId: string): DeliveryJobData {
  return {
    integrationId: integration.id,
    integrationVersion: integration.version ?? 1,
    eventId,
    webhookId,
    vars: { action: 'flag.created', resourceType: 'flag', resourceId: 1, resourceName: 'f', details: '', projectId, user: { id: 1, name: 'u', email: 'u@example.com' }, timestamp: new Date().toISOString() },
    committedAt: Date.now(),
  };
}
