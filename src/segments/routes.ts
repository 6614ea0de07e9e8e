import Router from '@koa/router';
import { array, mixed, object, string } from 'yup';
import { actorOf } from '../http/auth.js';
import { keyField, nameField } from '../http/schemas.js';
import { parseBody, routeId } from '../http/validation.js';
import { CONDITION_OPERATORS, orderCondition, type Condition, type SegmentModel } from './model.js';
import type { SegmentService } from './service.js';

const condition = object({
  attribute: string().required().min(1).max(100, '${path} must be at most 100 characters'),
  operator: mixed<Condition['operator']>()
    .required()
    .oneOf([...CONDITION_OPERATORS], `\${path} must be one of ${CONDITION_OPERATORS.join(', ')}`),
  values: array(string().required().max(1000, '${path} must be at most 1000 characters'))
    .required()
    .max(1000, '${path} must have at most 1000 values'),
});
const conditions = () => array(condition.required()).max(100, '${path} must have at most 100 conditions');
const createSchema = object({ key: keyField().required(), name: nameField().required(), conditions: conditions().required() });
const updateSchema = object({ key: keyField(), name: nameField().required(), conditions: conditions() });

export function segmentRoutes(segments: SegmentService): Router {
  const router = new Router({ prefix: '/segments' });
  const id = (ctx: { params: Record<string, string> }) => routeId(ctx.params, 'id', 'segment');

  router.get('/', async (ctx) => {
    ctx.body = (await segments.list(actorOf(ctx))).map(presentSegment);
  });
  router.post('/', async (ctx) => {
    const input = parseBody(createSchema, ctx.request.body);
    ctx.status = 201;
    ctx.body = presentSegment(await segments.create(actorOf(ctx), { ...input, conditions: pickConditions(input.conditions) }));
  });
  router.get('/:id', async (ctx) => {
    ctx.body = presentSegment(await segments.get(actorOf(ctx), id(ctx)));
  });
  router.put('/:id', async (ctx) => {
    const segmentId = id(ctx);
    const input = parseBody(updateSchema, ctx.request.body);
    const update = { ...input, conditions: input.conditions && pickConditions(input.conditions) };
    ctx.body = presentSegment(await segments.update(actorOf(ctx), segmentId, update));
  });
  router.delete('/:id', async (ctx) => {
    await segments.remove(actorOf(ctx), id(ctx));
    ctx.status = 204;
  });
  return router;
}

/** Only the fields of a condition are stored, whatever else the client sent. */
function pickConditions(input: Condition[]): Condition[] {
  return input.map(orderCondition);
}

export function presentSegment(segment: SegmentModel) {
  return {
    id: segment.id,
    key: segment.key,
    name: segment.name,
    conditions: segment.conditions,
    createdAt: segment.createdAt.toISOString(),
    updatedAt: segment.updatedAt.toISOString(),
  };
}
