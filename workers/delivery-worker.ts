import { runProcess } from '../src/lifecycle.js';

// Delivery arrives with the delivery issue; until then the worker only idles.
await runProcess('worker', async (_config, log) => {
  log.info('worker idle: no delivery yet');
  const timer = setInterval(() => undefined, 60_000);
  return async () => clearInterval(timer);
});
