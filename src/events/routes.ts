import Router from '@koa/router';
import { number, object } from 'yup';
import { actorOf } from '../http/auth.js';
import { parseBody } from '../http/validation.js';
import type { EventQueries } from './queries.js';

const querySchema = object({
  limit: number().integer().min(1).max(500),
  before: number().integer().positive(),
});

export function eventRoutes(events: EventQueries): Router {
  const router = new Router();
  router.get('/events', async (ctx) => {
    const query = parseBody(querySchema, numericQuery(ctx.query, ['limit', 'before']));
    ctx.body = await events.list(actorOf(ctx), { limit: query.limit ?? 50, before: query.before });
  });
  return router;
}

/** Query strings are text: turns digits into numbers and leaves anything else for the schema to refuse. */
function numericQuery(query: Record<string, string | string[] | undefined>, names: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of names) {
    const value = query[name];
    if (value === undefined) continue;
    out[name] = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  }
  return out;
}
