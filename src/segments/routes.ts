import Router from '@koa/router';
import { array, mixed, object, ValidationError } from 'yup';
import { actorOf } from '../http/auth.js';
import { keyField, nameField, textField } from '../http/schemas.js';
import { parseBody, routeId } from '../http/validation.js';
import { CONDITION_OPERATORS, orderCondition, type Condition, type SegmentModel } from './model.js';
import type { SegmentService } from './service.js';

/** What a value of a typed operator must look like; the operators not listed take any text. */
const VALUE_FORMATS: Array<{ prefix: string; what: string; test: (value: string) => boolean }> = [
  // As JSON writes numbers (but leading zeros): not " 5", "0x10", ".5" or "Infinity", which readers take differently.
  { prefix: 'num_', what: 'a number', test: (v) => /^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$/.test(v) && Number.isFinite(Number(v)) },
  {
    prefix: 'date_',
    what: 'a date in ISO 8601 (2026-01-31 or 2026-01-31T12:00:00Z)',
    test: (v) => {
      const date = /^(\d{4})-(\d{2})-(\d{2})(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?$/.exec(v);
      // A day the month has (Date.parse takes 2026-02-30 for March 2nd), at a time that exists.
      if (date === null) return false;
      const day = new Date(Date.UTC(+date[1]!, +date[2]! - 1, +date[3]!));
      return day.getUTCMonth() === +date[2]! - 1 && day.getUTCDate() === +date[3]! && !Number.isNaN(Date.parse(v));
    },
  },
  {
    prefix: 'semver_',
    what: 'a semantic version (1.2.3, 1.2.3-beta.1)',
    // SemVer 2.0: no leading zeros, in the version or in a numeric pre-release identifier.
    test: (v) => /^(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)(?:-(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/.test(v),
  },
];

const condition = object({
  attribute: textField(100).required().min(1),
  operator: mixed<Condition['operator']>()
    .required()
    .oneOf([...CONDITION_OPERATORS], `\${path} must be one of ${CONDITION_OPERATORS.join(', ')}`),
  values: array(textField(1000).required())
    .required()
    .min(1, '${path} must have at least one value')
    .max(1000, '${path} must have at most 1000 values'),
}).test('typed-values', function (value) {
  // A condition whose values can never match its operator (num_gt "abc") is refused by value.
  const format = VALUE_FORMATS.find((f) => typeof value?.operator === 'string' && value.operator.startsWith(f.prefix));
  if (!format || !Array.isArray(value?.values)) return true;
  const faults = value.values.flatMap((v, i) => {
    if (typeof v !== 'string' || format.test(v)) return [];
    const path = `${this.path}.values[${i}]`;
    return [this.createError({ path, message: `${path} must be ${format.what} for ${value.operator}` })];
  });
  // Each bad value by its own path (a long list is judged by its first values: see faultsOf).
  return faults.length === 0 || new ValidationError(faults);
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
