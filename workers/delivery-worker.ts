import { startDeliveryWorker } from '../src/delivery/worker.js';
import { runProcess } from '../src/lifecycle.js';
import { startMetricsServer } from '../src/ops/metrics-server.js';

/** `npm run worker`: one delivery worker process; run as many as the load needs. */
await runProcess('worker', async (config, log) => {
  const worker = startDeliveryWorker(config, log);
  let stopping = false;
  const metrics =
    config.workerMetricsPort === 0
      ? null
      : await startMetricsServer(config.workerMetricsPort, worker.metrics.registry, () => !stopping && worker.worker.isRunning());
  log.info({ concurrency: config.workerConcurrency, queuePrefix: config.queuePrefix, metricsPort: metrics?.port ?? null }, 'worker started');
  return async () => {
    stopping = true;
    await worker.close();
    await metrics?.close();
  };
});
