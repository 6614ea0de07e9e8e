import Router from '@koa/router';
import { object } from 'yup';
import { actorOf } from '../http/auth.js';
import { keyField, nameField, textField } from '../http/schemas.js';
import { validationFailed } from '../http/errors.js';
import { parseBody, routeId } from '../http/validation.js';
import type { FlagModel } from './model.js';
import type { FlagService } from './service.js';

const description = () => textField(2000);
const createSchema = object({ key: keyField().required(), name: nameField().required(), description: description() });
const updateSchema = object({ key: keyField(), name: nameField().required(), description: description() });

export function flagRoutes(flags: FlagService): Router {
  const router = new Router({ prefix: '/flags' });
  const id = (ctx: { params: Record<string, string> }) => routeId(ctx.params, 'id', 'flag');

  router.get('/', async (ctx) => {
    ctx.body = (await flags.list(actorOf(ctx), archivedQuery(ctx.query.archived))).map(presentFlag);
  });
  router.post('/', async (ctx) => {
    const input = parseBody(createSchema, ctx.request.body);
    ctx.status = 201;
    ctx.body = presentFlag(await flags.create(actorOf(ctx), input));
  });
  router.get('/:id', async (ctx) => {
    ctx.body = presentFlag(await flags.get(actorOf(ctx), id(ctx)));
  });
  router.put('/:id', async (ctx) => {
    const flagId = id(ctx);
    const input = parseBody(updateSchema, ctx.request.body);
    ctx.body = presentFlag(await flags.update(actorOf(ctx), flagId, input));
  });
  router.delete('/:id', async (ctx) => {
    await flags.remove(actorOf(ctx), id(ctx));
    ctx.status = 204;
  });
  router.post('/:id/archive', async (ctx) => {
    ctx.body = presentFlag(await flags.setArchived(actorOf(ctx), id(ctx), true));
  });
  router.post('/:id/unarchive', async (ctx) => {
    ctx.body = presentFlag(await flags.setArchived(actorOf(ctx), id(ctx), false));
  });
  return router;
}

export function presentFlag(flag: FlagModel) {
  return {
    id: flag.id,
    key: flag.key,
    name: flag.name,
    description: flag.description,
    archived: flag.archivedAt !== null,
    archivedAt: flag.archivedAt?.toISOString() ?? null,
    createdAt: flag.createdAt.toISOString(),
    updatedAt: flag.updatedAt.toISOString(),
  };
}

/** `?archived=true` lists the archive, `false` or nothing the active flags; anything else is a mistake, not `false`. */
function archivedQuery(value: string | string[] | undefined): boolean {
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  throw validationFailed([{ path: 'archived', message: 'archived must be true or false' }]);
}
