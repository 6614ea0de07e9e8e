import Router from '@koa/router';
import { array, boolean, number, object } from 'yup';
import { actorOf } from '../http/auth.js';
import { idField } from '../http/schemas.js';
import { parseBody, routeId } from '../http/validation.js';
import type { StrategyService } from './service.js';
import type { Strategy } from './store.js';

const putSchema = object({
  enabled: boolean().required(),
  rolloutPercentage: number().required().integer('${path} must be a whole number').min(0).max(100),
  segmentIds: array(idField().required())
    .max(100)
    .test('unique', '${path} must not repeat a segment', (ids) => !ids || new Set(ids).size === ids.length),
});

export function strategyRoutes(strategies: StrategyService): Router {
  const router = new Router({ prefix: '/flags/:flagId/strategies' });
  const ids = (ctx: { params: Record<string, string> }) =>
    [routeId(ctx.params, 'flagId', 'flag'), routeId(ctx.params, 'environmentId', 'environment')] as const;

  router.get('/:environmentId', async (ctx) => {
    ctx.body = presentStrategy(await strategies.get(actorOf(ctx), ...ids(ctx)));
  });
  router.put('/:environmentId', async (ctx) => {
    const [flagId, environmentId] = ids(ctx);
    const input = parseBody(putSchema, ctx.request.body);
    ctx.body = presentStrategy(await strategies.put(actorOf(ctx), flagId, environmentId, input));
  });
  return router;
}

export function presentStrategy(strategy: Strategy) {
  return { ...strategy, updatedAt: strategy.updatedAt?.toISOString() ?? null };
}
