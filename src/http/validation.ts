import { ArraySchema, ObjectSchema, setLocale, ValidationError, type AnyObject, type Schema } from 'yup';
import { AppError, notFound, SAMPLED_ELEMENTS, validationFailed, type ErrorDetail } from './errors.js';
import { MAX_ID } from './schemas.js';

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
 * details name each bad field by path. Answers only the fields the schema names:
 * any other key of the body (`id`, `projectId`, `createdAt` of a resource sent
 * back as read) is ignored, never passed on to the database.
 */
export function parseBody<T extends AnyObject>(schema: ObjectSchema<T>, body: unknown): T {
  // An array past its limit is that one fault: the rest is judged with it cut to the limit, not each
  // of its elements, up to a megabyte of them.
  const details: ErrorDetail[] = [];
  const value = knownFields(schema, jsonObjectBody(body), '', details);
  details.push(...unstorableText(value));
  const seen = new Set(details.map((d) => d.path));
  const faults = faultsOf(schema, value);
  for (const detail of faults.details) if (!seen.has(detail.path)) details.push(detail);
  if (details.length > 0) throw validationFailed(details, faults.complete);
  return value as T;
}

/**
 * yup's faults of `value`. A first pass stops at the first fault (a valid body costs that pass
 * alone); the details then come from a copy whose arrays keep their first SAMPLED_ELEMENTS elements,
 * with the first fault added should it lie beyond them. Gathering every fault of the whole body
 * made yup spend seconds of the api's one thread on 100 000 wrong values within the limits.
 */
function faultsOf(schema: Schema, value: unknown): { details: ErrorDetail[]; complete: boolean } {
  try {
    schema.validateSync(value, { abortEarly: true, strict: true });
    return { details: [], complete: true };
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    const first = detailsOf(err);
    const cut = new Set<string>();
    let sampled: ErrorDetail[] = [];
    try {
      schema.validateSync(sample(value, '', cut), { abortEarly: false, strict: true });
    } catch (err2) {
      if (!(err2 instanceof ValidationError)) throw err2;
      // A rule on a cut array as a whole (its length, say) judged the cut copy: only the first pass's word counts for it.
      sampled = detailsOf(err2).filter((d) => !cut.has(d.path));
    }
    const paths = new Set(sampled.map((d) => d.path));
    return { details: [...sampled, ...first.filter((d) => !paths.has(d.path))], complete: cut.size === 0 };
  }
}

/** `value` with every array cut to its first SAMPLED_ELEMENTS elements; the paths of those cut go in `cut`. */
function sample(value: unknown, path: string, cut: Set<string>): unknown {
  if (Array.isArray(value)) {
    if (value.length > SAMPLED_ELEMENTS) cut.add(path);
    return value.slice(0, SAMPLED_ELEMENTS).map((item, i) => sample(item, `${path}[${i}]`, cut));
  }
  if (isPlainObject(value)) return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, sample(item, path ? `${path}.${key}` : key, cut)]));
  return value;
}

interface MaxTest {
  OPTIONS?: { name?: string; message?: unknown; params?: { max?: number } };
}

/**
 * A request body that is a JSON object, at most MAX_DEPTH deep. No body, or only white space, is
 * not JSON at all (SPEC §4: `invalid_json`); another JSON value is `validation_failed`.
 */
export function jsonObjectBody(body: unknown): Record<string, unknown> {
  if (body === undefined) throw new AppError('invalid_json', 'the request body is empty: send a JSON object');
  if (!isPlainObject(body)) throw validationFailed([{ path: '', message: 'the request body must be a JSON object' }]);
  if (nestedDeeperThan(body, MAX_DEPTH)) throw tooDeep('');
  return body;
}

/**
 * The value with only the keys its schema names, at every depth. Strict validation
 * hands back the input itself, unknown keys and all, so this is what keeps a
 * `projectId` in a body from reaching an insert or update. Each array longer than its
 * schema's `max` is cut to it, with one detail in the schema's own words in `details`.
 */
function knownFields(schema: Schema | unknown, value: unknown, path: string, details: ErrorDetail[]): unknown {
  if (schema instanceof ObjectSchema && isPlainObject(value)) {
    const fields = Object.entries(schema.fields as Record<string, unknown>);
    if (fields.length === 0) return value; // a free-form object
    const out: Record<string, unknown> = {};
    for (const [key, field] of fields) if (Object.hasOwn(value, key)) out[key] = knownFields(field, value[key], path ? `${path}.${key}` : key, details);
    return out;
  }
  if (!(schema instanceof ArraySchema) || !Array.isArray(value)) return value;
  const max = (schema.tests as MaxTest[]).find((test) => test.OPTIONS?.name === 'max')?.OPTIONS;
  const limit = max?.params?.max;
  let items: unknown[] = value;
  if (limit !== undefined && value.length > limit) {
    const words = typeof max?.message === 'string' ? max.message : '${path} must have at most ${max} entries';
    details.push({ path, message: words.replaceAll('${path}', path).replaceAll('${max}', String(limit)) });
    items = value.slice(0, limit);
  }
  return schema.innerType ? items.map((item, i) => knownFields(schema.innerType, item, `${path}[${i}]`, details)) : items;
}

/** Deeper than any request of the API needs; checked before anything walks a body. */
export const MAX_DEPTH = 32;

/**
 * Whether JSON nests arrays and objects more than `max` levels deep. Walks with a
 * list, not by recursion: a body of `[[[[…` thousands deep must answer 400, not
 * overflow the stack of whatever walks it next (JSON.stringify among them).
 */
export function nestedDeeperThan(value: unknown, max: number): boolean {
  let level: unknown[] = [value];
  for (let depth = 0; level.length > 0; depth++) {
    const next: unknown[] = [];
    for (const item of level) {
      // A loop, not push(...item): a spread of 200 000 elements overflows the stack by itself.
      if (Array.isArray(item)) for (const child of item) next.push(child);
      else if (isPlainObject(item)) for (const child of Object.values(item)) next.push(child);
    }
    if (next.length > 0 && depth + 1 > max) return true;
    level = next;
  }
  return false;
}

export const tooDeep = (path: string) =>
  validationFailed([{ path, message: `${path || 'the request body'} nests arrays and objects more than ${MAX_DEPTH} levels deep` }]);

/** Half of a UTF-16 surrogate pair without its other half (JSON can write one as "\\ud800"). */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * One detail per text PostgreSQL cannot store as sent, refused here, by field, rather
 * than failing the write or being changed by it: U+0000 (text cannot hold it), and
 * an unpaired surrogate (not Unicode: jsonb refuses it, and text would get U+FFFD in
 * its place, so the stored value would differ from what was sent, and sending it
 * again would count as a change). (The value is at most MAX_DEPTH deep: see
 * `nestedDeeperThan`.)
 */
export function unstorableText(value: unknown, path = ''): ErrorDetail[] {
  if (typeof value === 'string') {
    if (value.includes('\0')) return [{ path, message: `${path || 'the value'} must not contain the NUL character (\\u0000)` }];
    if (LONE_SURROGATE.test(value)) return [{ path, message: `${path || 'the value'} must not contain an unpaired surrogate (\\ud800–\\udfff): it is not Unicode text` }];
    return [];
  }
  if (Array.isArray(value)) return value.flatMap((item, i) => unstorableText(item, `${path}[${i}]`));
  if (isPlainObject(value)) return Object.entries(value).flatMap(([key, item]) => unstorableText(item, path ? `${path}.${key}` : key));
  return [];
}

/** A JSON object: not null, not an array. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
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
  return id <= MAX_ID ? id : null;
}

/** The `:name` route parameter as an id, or 404 naming the resource (a malformed id names nothing). */
export function routeId(params: Record<string, string | undefined>, name: string, resource: string): number {
  const id = idParam(params[name]);
  if (id === null) throw notFound(resource);
  return id;
}

/**
 * Query strings are text: turns whole numbers into numbers for the schema to judge their range, and
 * refuses anything else here, by name (`2.5`, `abc`, a parameter given twice).
 */
export function numericQuery(query: Record<string, string | string[] | undefined>, names: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const faults: ErrorDetail[] = [];
  for (const name of names) {
    const value = query[name];
    if (value === undefined) continue;
    if (typeof value !== 'string') faults.push({ path: name, message: `${name} must be given once` });
    else if (!/^-?\d+$/.test(value)) faults.push({ path: name, message: `${name} must be a whole number` });
    else out[name] = Number(value);
  }
  if (faults.length > 0) throw validationFailed(faults);
  return out;
}
