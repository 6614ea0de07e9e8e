import { startDeliveryWorker } from '../../src/delivery/worker.js';
import { runProcess } from '../../src/lifecycle.js';

/**
 * workers/delivery-worker.ts with BullMQ's stall timing shortened, so tests can kill
 * a worker and see its job taken up again within seconds rather than half a minute.
 */
await runProcess('worker', async (config, log) => {
  const stall = Number(process.env.TEST_STALL_MS ?? 30_000);
  const worker = startDeliveryWorker(config, log, { lockDurationMs: stall, stalledIntervalMs: stall });
  await worker.worker.waitUntilReady();
  process.send?.('ready');
  return () => worker.close();
});
