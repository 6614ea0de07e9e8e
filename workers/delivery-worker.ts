import { WORKER_THREAD_POOL_SIZE, type Config } from '../src/config.js';
import { assertDatabaseReachable, createDb } from '../src/db/knex.js';
import { assertMigrated } from '../src/db/migrate.js';
import { assertRedisDatabase } from '../src/delivery/queue.js';
import { startDeliveryWorker } from '../src/delivery/worker.js';
import { runProcess } from '../src/lifecycle.js';
import { startMetricsServer } from '../src/ops/metrics-server.js';

/**
 * In-flight deliveries end by WEBHOOK_TIMEOUT_MS and their outcomes wait 5 s more; with Redis
 * unreachable BullMQ's close would wait for it for ever. Exiting after that leaves unfinished jobs
 * to the stall check, as a killed worker would (the grace periods we ship are longer: 45 s).
 */
const stopDeadlineMs = (config: Readonly<Config>) => config.webhookTimeoutMs + 10_000;

/**
 * Refuses to start, in one line, on a database it could not deliver from: unreachable, refusing
 * the login, missing, without this code's migrations, or out of its user's privileges. Started
 * anyway, it would look healthy and fail every job it took (a statement error is not an outage
 * to wait out).
 */
async function assertDatabaseUsable(databaseUrl: string): Promise<void> {
  const db = createDb(databaseUrl, { poolMax: 1 });
  try {
    await assertDatabaseReachable(db, databaseUrl);
    await assertMigrated(db);
  } finally {
    await db.destroy();
  }
}

/** `npm run worker`: one delivery worker process; run as many as the load needs. */
await runProcess('worker', async (config, log) => {
  await assertDatabaseUsable(config.databaseUrl);
  await assertRedisDatabase(config);
  const worker = startDeliveryWorker(config, log);
  let stopping = false;
  const metrics =
    config.workerMetricsPort === 0
      ? null
      : await startMetricsServer(config.workerMetricsPort, worker.metrics.registry, () => !stopping && worker.worker.isRunning() && worker.healthy());
  // libuv's pool (getaddrinfo lookups among its uses) is sized from UV_THREADPOOL_SIZE when the process starts: 4 without it.
  const threadPool = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  log.info({ concurrency: config.workerConcurrency, queuePrefix: config.queuePrefix, metricsPort: metrics?.port ?? null, threadPool }, 'worker started');
  if (threadPool < 16) {
    log.warn({ threadPool }, `UV_THREADPOOL_SIZE is small: the up to 8 system lookups of names the nameservers give no address of, stuck on a slow resolver, could hold up PostgreSQL and Redis; npm run worker and the image set ${WORKER_THREAD_POOL_SIZE}`);
  }
  return async () => {
    stopping = true;
    await worker.close();
    await metrics?.close();
  };
}, { stopDeadlineMs });

