import Router from '@koa/router';
import { boolean, object } from 'yup';
import { actorOf } from '../http/auth.js';
import { idField, nameField } from '../http/schemas.js';
import { parseBody, routeId } from '../http/validation.js';
import type { ApiKeyModel } from './model.js';
import type { ApiKeyService } from './service.js';

const createSchema = object({ name: nameField().required(), environmentId: idField().nullable() });
const updateSchema = object({ name: nameField().required(), enabled: boolean().required() });

export function apiKeyRoutes(apiKeys: ApiKeyService): Router {
  const router = new Router({ prefix: '/apikeys' });
  const id = (ctx: { params: Record<string, string> }) => routeId(ctx.params, 'id', 'API key');

  router.get('/', async (ctx) => {
    ctx.body = (await apiKeys.list(actorOf(ctx))).map(presentApiKey);
  });
  router.post('/', async (ctx) => {
    const input = parseBody(createSchema, ctx.request.body);
    const { key, token } = await apiKeys.create(actorOf(ctx), input);
    ctx.status = 201;
    ctx.body = { ...presentApiKey(key), token };
  });
  router.get('/:id', async (ctx) => {
    ctx.body = presentApiKey(await apiKeys.get(actorOf(ctx), id(ctx)));
  });
  router.put('/:id', async (ctx) => {
    const keyId = id(ctx);
    const input = parseBody(updateSchema, ctx.request.body);
    ctx.body = presentApiKey(await apiKeys.update(actorOf(ctx), keyId, input));
  });
  router.delete('/:id', async (ctx) => {
    await apiKeys.remove(actorOf(ctx), id(ctx));
    ctx.status = 204;
  });
  return router;
}

/** Never the token or its hash: only the prefix that tells keys apart. */
export function presentApiKey(key: ApiKeyModel) {
  return {
    id: key.id,
    name: key.name,
    environmentId: key.environmentId,
    enabled: key.enabled,
    tokenPrefix: key.tokenPrefix,
    createdByUserId: key.userId,
    createdAt: key.createdAt.toISOString(),
    updatedAt: key.updatedAt.toISOString(),
  };
}
