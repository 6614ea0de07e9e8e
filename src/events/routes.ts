import Router from '@koa/router';
import { number, object } from 'yup';
import { actorOf } from '../http/auth.js';
import { numericQuery, parseBody } from '../http/validation.js';
import type { EventQueries } from './queries.js';

const querySchema = object({
  limit: number().integer().min(1).max(500),
  before: number().integer().positive().max(Number.MAX_SAFE_INTEGER),
});

export function eventRoutes(events: EventQueries): Router {
  const router = new Router();
  router.get('/events', async (ctx) => {
    const query = parseBody(querySchema, numericQuery(ctx.query, ['limit', 'before']));
    ctx.body = await events.list(actorOf(ctx), { limit: query.limit ?? 50, before: query.before });
  });
  return router;
}
