import Router from '@koa/router';
import type { Exposition } from './metrics.js';

/** Prometheus text exposition at /metrics. */
export function metricsRoutes(registry: Exposition): Router {
  const router = new Router();
  router.get('/metrics', async (ctx) => {
    ctx.type = registry.contentType;
    ctx.body = await registry.metrics();
  });
  return router;
}
