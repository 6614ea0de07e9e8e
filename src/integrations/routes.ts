import Router from '@koa/router';
import { actorOf } from '../http/auth.js';
import { number, object } from 'yup';
import { numericQuery, parseBody, routeId } from '../http/validation.js';
import type { IntegrationModel } from './model.js';
import type { IntegrationService } from './service.js';

const deliveriesQuery = object({ limit: number().integer().min(1).max(1000) });

export function integrationRoutes(integrations: IntegrationService): Router {
  const router = new Router({ prefix: '/integrations' });
  const id = (ctx: { params: Record<string, string> }) => routeId(ctx.params, 'id', 'integration');

  router.get('/', async (ctx) => {
    ctx.body = (await integrations.list(actorOf(ctx))).map(presentIntegration);
  });
  router.post('/', async (ctx) => {
    ctx.status = 201;
    ctx.body = presentIntegration(await integrations.create(actorOf(ctx), ctx.request.body));
  });
  router.get('/:id', async (ctx) => {
    ctx.body = presentIntegration(await integrations.get(actorOf(ctx), id(ctx)));
  });
  router.put('/:id', async (ctx) => {
    ctx.body = presentIntegration(await integrations.update(actorOf(ctx), id(ctx), ctx.request.body));
  });
  router.delete('/:id', async (ctx) => {
    await integrations.remove(actorOf(ctx), id(ctx));
    ctx.status = 204;
  });
  router.post('/:id/test', async (ctx) => {
    ctx.status = 202;
    ctx.body = await integrations.sendTest(actorOf(ctx), id(ctx));
  });
  router.get('/:id/deliveries', async (ctx) => {
    const integrationId = id(ctx);
    const { limit } = parseBody(deliveriesQuery, numericQuery(ctx.query, ['limit']));
    ctx.body = await integrations.deliveries(actorOf(ctx), integrationId, limit ?? 100);
  });
  return router;
}

/** SPEC §4's response object: configJson and eventSubscriptionsJson as the strings sent, the secret masked. */
export function presentIntegration(integration: IntegrationModel) {
  return {
    id: integration.id,
    name: integration.name,
    enabled: integration.enabled,
    type: integration.type,
    configJson: integration.configJson,
    eventSubscriptionsJson: integration.eventSubscriptionsJson,
    lastError: integration.lastError,
    lastErrorAt: integration.lastErrorAt?.toISOString() ?? null,
    lastDeliveryAt: integration.lastDeliveryAt?.toISOString() ?? null,
    lastDeliveryStatus: integration.lastDeliveryStatus,
    createdAt: integration.createdAt.toISOString(),
    updatedAt: integration.updatedAt.toISOString(),
  };
}
