import Router from '@koa/router';
import type { Context } from 'koa';
import { actorOf } from '../http/auth.js';
import { number, object } from 'yup';
import { numericQuery, parseBody, routeId } from '../http/validation.js';
import type { AddressPolicy } from '../delivery/address-rules.js';
import type { IntegrationModel } from './model.js';
import { StaleIntegration, type IntegrationService } from './service.js';
import { parseIntegration, parseRotation } from './validation.js';

const deliveriesQuery = object({ limit: number().integer().min(1).max(1000) });

/** `policy` judges integration URLs as they are saved (the SSRF guard's rules, WEBHOOK_ALLOWED_CIDRS). */
export function integrationRoutes(integrations: IntegrationService, policy: AddressPolicy): Router {
  const router = new Router({ prefix: '/integrations' });
  const id = (ctx: { params: Record<string, string> }) => routeId(ctx.params, 'id', 'integration');

  router.get('/', async (ctx) => {
    ctx.body = (await integrations.list(actorOf(ctx))).map(presentIntegration);
  });
  router.post('/', async (ctx) => {
    ctx.status = 201;
    answer(ctx, await integrations.create(actorOf(ctx), parseIntegration(ctx.request.body, policy, 'create')));
  });
  router.get('/:id', async (ctx) => {
    answer(ctx, await integrations.get(actorOf(ctx), id(ctx)));
  });
  router.put('/:id', async (ctx) => {
    const integrationId = id(ctx);
    const input = parseIntegration(ctx.request.body, policy, 'update');
    const ifMatch = ctx.get('if-match');
    try {
      answer(ctx, await integrations.update(actorOf(ctx), integrationId, input, ifMatch === '' ? undefined : (version) => matchesIfMatch(ifMatch, etagOf(version))));
    } catch (err) {
      // A stale copy: the tag it would need now, so a client can read it again knowingly.
      if (err instanceof StaleIntegration) ctx.set('ETag', etagOf(err.version));
      throw err;
    }
  });
  router.delete('/:id', async (ctx) => {
    await integrations.remove(actorOf(ctx), id(ctx));
    ctx.status = 204;
  });
  router.post('/:id/secret/rotate', async (ctx) => {
    const integrationId = id(ctx);
    ctx.body = await integrations.rotateSecret(actorOf(ctx), integrationId, parseRotation(ctx.request.body));
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

/** One integration answered, with its ETag: a PUT sent back with `If-Match` saves only over the version read. */
function answer(ctx: Context, integration: IntegrationModel): void {
  ctx.set('ETag', etagOf(integration.version));
  ctx.body = presentIntegration(integration);
}

const etagOf = (version: number): string => `"${version}"`;

/**
 * RFC 9110 §13.1.1: `*`, or a list of entity tags compared strongly (a weak `W/"…"` tag never
 * matches, as a PUT must not be made on the strength of one).
 */
export function matchesIfMatch(header: string, etag: string): boolean {
  if (header.trim() === '*') return true;
  return (header.match(/(?:W\/)?"[^"]*"/g) ?? []).some((tag) => tag === etag);
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
