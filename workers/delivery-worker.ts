import { startDeliveryWorker } from '../src/delivery/worker.js';
import { runProcess } from '../src/lifecycle.js';

/** `npm run worker`: one delivery worker process; run as many as the load needs. */
await runProcess('worker', async (config, log) => {
  const worker = startDeliveryWorker(config, log);
  log.info({ concurrency: config.workerConcurrency, queuePrefix: config.queuePrefix }, 'worker started');
  return () => worker.close();
});
