import Router from '@koa/router';
import { object } from 'yup';
import { actorOf } from '../http/auth.js';
import { keyField, nameField } from '../http/schemas.js';
import { parseBody, routeId } from '../http/validation.js';
import type { EnvironmentModel } from './model.js';
import type { EnvironmentService } from './service.js';

const createSchema = object({ key: keyField().required(), name: nameField().required() });
const updateSchema = object({ key: keyField(), name: nameField().required() });

export function environmentRoutes(environments: EnvironmentService): Router {
  const router = new Router({ prefix: '/environments' });
  const id = (ctx: { params: Record<string, string> }) => routeId(ctx.params, 'id', 'environment');

  router.get('/', async (ctx) => {
    ctx.body = (await environments.list(actorOf(ctx))).map(presentEnvironment);
  });
  router.post('/', async (ctx) => {
    const input = parseBody(createSchema, ctx.request.body);
    ctx.status = 201;
    ctx.body = presentEnvironment(await environments.create(actorOf(ctx), input));
  });
  router.get('/:id', async (ctx) => {
    ctx.body = presentEnvironment(await environments.get(actorOf(ctx), id(ctx)));
  });
  router.put('/:id', async (ctx) => {
    const envId = id(ctx);
    const input = parseBody(updateSchema, ctx.request.body);
    ctx.body = presentEnvironment(await environments.update(actorOf(ctx), envId, input));
  });
  router.delete('/:id', async (ctx) => {
    await environments.remove(actorOf(ctx), id(ctx));
    ctx.status = 204;
  });
  return router;
}

export function presentEnvironment(env: EnvironmentModel) {
  return { id: env.id, key: env.key, name: env.name, createdAt: env.createdAt.toISOString(), updatedAt: env.updatedAt.toISOString() };
}
