import { startDeliveryWorker } from '../../src/delivery/worker.js';
import { runProcess } from '../../src/lifecycle.js';

/**
 * workers/delivery-worker.ts with BullMQ's lock and stall-check timing from TEST_LOCK_MS and
 * TEST_STALL_MS, so tests can kill a worker and see its job taken up again within seconds
 * rather than half a minute.
 */
await runProcess('worker', async (config, log) => {
  const worker = startDeliveryWorker(config, log, {
    lockDurationMs: Number(process.env.TEST_LOCK_MS ?? 30_000),
    stalledIntervalMs: Number(process.env.TEST_STALL_MS ?? 30_000),
  });
  await worker.worker.waitUntilReady();
  process.send?.('ready');
  return () => worker.close();
});
