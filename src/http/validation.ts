import { setLocale, ValidationError, type AnyObject, type ObjectSchema } from 'yup';
import { notFound, validationFailed, type ErrorDetail } from './errors.js';

// Plain messages for every schema: "enabled must be a boolean", not yup's "final value was" wording.
setLocale({
  mixed: {
    notType: ({ path, type }: { path: string; type: string }) => `${path} must be ${type === 'array' || type === 'object' ? 'an' : 'a'} ${type}`,
    required: ({ path }: { path: string }) => `${path} is required`,
  },
});

/**
 * Validates a request body with a yup object schema (strict: no type coercion,
 * every problem reported at once); a failure is `400 validation_failed` whose
 * details name each bad field by path.
 */
export function parseBody<T extends AnyObject>(schema: ObjectSchema<T>, body: unknown): T {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw validationFailed([{ path: '', message: 'the request body must be a JSON object' }]);
  }
  try {
    return schema.validateSync(body, { abortEarly: false, strict: true, stripUnknown: false }) as T;
  } catch (err) {
    if (err instanceof ValidationError) throw validationFailed(detailsOf(err));
    throw err;
  }
}

/** One detail per field: the first rule it broke (an empty name is not also "too short"). */
export function detailsOf(err: ValidationError): ErrorDetail[] {
  const leaves = err.inner.length > 0 ? err.inner : [err];
  const byPath = new Map<string, string>();
  for (const leaf of leaves) if (!byPath.has(leaf.path ?? '')) byPath.set(leaf.path ?? '', leaf.message);
  return [...byPath].map(([path, message]) => ({ path, message }));
}

/** A positive integer route parameter; anything else cannot name a resource, so it is 404 like an unknown id. */
export function idParam(value: string | undefined): number | null {
  if (value === undefined || !/^[1-9]\d{0,9}$/.test(value)) return null;
  const id = Number(value);
  return id <= 2_147_483_647 ? id : null;
}

/** The `:name` route parameter as an id, or 404 naming the resource (a malformed id names nothing). */
export function routeId(params: Record<string, string | undefined>, name: string, resource: string): number {
  const id = idParam(params[name]);
  if (id === null) throw notFound(resource);
  return id;
}

/** Query strings are text: turns digits into numbers and leaves anything else for the schema to refuse. */
export function numericQuery(query: Record<string, string | string[] | undefined>, names: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of names) {
    const value = query[name];
    if (value === undefined) continue;
    out[name] = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  }
  return out;
}
