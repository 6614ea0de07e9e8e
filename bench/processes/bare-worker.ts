import { readFileSync } from 'node:fs';
import { Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { announceReady, exitWithParent } from '../support/ipc.js';
import { Poster } from '../support/poster.js';

export interface BareJob {
  url: string;
  body: string;
  webhookId: string;
}

/**
 * Baseline "bare BullMQ": a BullMQ worker with the product's concurrency whose job
 * is only the undici POST of a body it is handed — no database, no template, no
 * signing. What BullMQ plus HTTP cost on this machine.
 */
const poster = new Poster(readFileSync(process.env.BENCH_CA_FILE!, 'utf8'));
const connection = new Redis(process.env.REDIS_URL!, { maxRetriesPerRequest: null });
const worker = new Worker<BareJob>(
  process.env.BENCH_QUEUE!,
  async (job: Job<BareJob>) => {
    const status = await poster.post(job.data.url, job.data.body, job.data.webhookId);
    if (status !== 200) throw new Error(`HTTP ${status}`);
  },
  { connection, prefix: process.env.QUEUE_PREFIX!, concurrency: Number(process.env.WORKER_CONCURRENCY) },
);
worker.on('error', (err) => console.error(`bare worker: ${err.message}`));

exitWithParent(async () => {
  await worker.close();
  await poster.close();
  connection.disconnect();
});
await worker.waitUntilReady();
announceReady();
