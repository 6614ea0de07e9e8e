import { boolean, mixed, object, string, ValidationError } from 'yup';
import type { AddressPolicy } from '../delivery/address-rules.js';
import { isValidSecret } from '../delivery/signature.js';
import { EVENT_CODES, isEventCode, type EventCode } from '../events/codes.js';
import { validationFailed, type ErrorDetail } from '../http/errors.js';
import { nameField } from '../http/schemas.js';
import { detailsOf, isPlainObject, MAX_DEPTH, nestedDeeperThan, nulCharacters, tooDeep } from '../http/validation.js';
import { checkTemplate } from './template.js';

export const SECRET_MASK = '********';
export const DEFAULT_CONTENT_TYPE = 'application/json';

/** The configured Content-Type header (name as written, value), if any: names are case-insensitive. */
export function contentTypeHeader(headers: Readonly<Record<string, string>>): [name: string, value: string] | undefined {
  return Object.entries(headers).find(([name]) => name.toLowerCase() === 'content-type');
}
export const MAX_URL_LENGTH = 2048;
export const MAX_HEADERS = 30;
export const MAX_HEADER_VALUE_BYTES = 4096;

/** What a secret field asks for: a new secret, none, or (PUT with the mask) the stored one. */
export type SecretChange = { kind: 'set'; secret: string } | { kind: 'none' } | { kind: 'keep' };

export interface IntegrationInput {
  name: string;
  enabled: boolean;
  type: 'custom_webhook';
  url: string;
  headers: Record<string, string>;
  /** null: a body-less POST */
  body: string | null;
  secret: SecretChange;
  events: EventCode[];
  /** configJson as sent, the secret replaced by the mask: what GET answers. */
  configJson: string;
  eventSubscriptionsJson: string;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Headers mozhno sets itself, or that would break the request framing (SPEC §4), compared lower-case.
const RESERVED_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'te', 'upgrade']);
const RESERVED_PREFIXES = ['proxy-', 'webhook-'];
// Also refused, beyond SPEC §4: both are set (or deliberately not sent) by mozhno, so a configured value would be dropped silently.
const MOZHNO_HEADERS: Record<string, string> = {
  'user-agent': 'is set by mozhno (mozhno-webhooks/<version>)',
  'accept-encoding': 'is never sent: responses are not decompressed',
};
// Header values go on the wire as bytes: tabs and visible Latin-1 only.
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const CONFIG_KEYS = new Set(['url', 'headers', 'body', 'secret']);

const topLevel = object({
  name: nameField().required(),
  enabled: boolean(),
  type: mixed<'custom_webhook'>().oneOf(['custom_webhook'], 'type must be "custom_webhook" (the only type for now)'),
});

const configShape = object({
  url: string().typeError('configJson.url must be a string').required('configJson.url is required'),
  headers: object().nullable().typeError('configJson.headers must be an object of header name → value'),
  body: string().nullable().typeError('configJson.body must be a string (the body template)'),
  secret: string().nullable().typeError('configJson.secret must be a string'),
});

/**
 * Validates a create or update request of SPEC §4. Every problem is collected and
 * reported at once, each under the path of the field at fault; nothing is stored
 * unless this returns.
 */
export function parseIntegration(body: unknown, policy: AddressPolicy, mode: 'create' | 'update'): IntegrationInput {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw validationFailed([{ path: '', message: 'the request body must be a JSON object' }]);
  }
  if (nestedDeeperThan(body, MAX_DEPTH)) throw tooDeep('');
  const raw = body as Record<string, unknown>;
  const details: ErrorDetail[] = [];
  collect(details, () => topLevel.validateSync(raw, { abortEarly: false, strict: true }));
  if (!details.some((d) => d.path === 'name')) details.push(...nulCharacters(raw.name, 'name'));

  const config = parseJsonField(raw.configJson, 'configJson', 'object', details);
  const events = parseJsonField(raw.eventSubscriptionsJson, 'eventSubscriptionsJson', 'array', details);
  let parsedConfig: ReturnType<typeof checkConfig> | undefined;
  if (config) parsedConfig = checkConfig(config.value as Record<string, unknown>, policy, mode, details);
  const codes = events ? checkEvents(events.value as unknown[], details) : [];

  if (details.length > 0 || !config || !events || !parsedConfig) throw validationFailed(details);
  return {
    name: raw.name as string,
    enabled: (raw.enabled as boolean | undefined) ?? true,
    type: 'custom_webhook',
    ...parsedConfig,
    events: codes,
    configJson: maskSecret(config.text, parsedConfig.secret),
    eventSubscriptionsJson: events.text,
  };
}

function collect(details: ErrorDetail[], check: () => unknown): void {
  try {
    check();
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    details.push(...detailsOf(err));
  }
}

/** configJson and eventSubscriptionsJson come as JSON text (the seed's form) or already parsed. */
function parseJsonField(value: unknown, path: string, kind: 'object' | 'array', details: ErrorDetail[]): { value: unknown; text: string } | null {
  const article = kind === 'object' ? 'a JSON object' : 'a JSON array';
  if (value === undefined || value === null) {
    details.push({ path, message: `${path} is required: ${article}, as a string or as JSON` });
    return null;
  }
  let parsed = value;
  if (typeof value === 'string') {
    try {
      parsed = JSON.parse(value);
    } catch (err) {
      details.push({ path, message: `${path} is not valid JSON: ${(err as Error).message}` });
      return null;
    }
    if (nestedDeeperThan(parsed, MAX_DEPTH)) {
      details.push(...(tooDeep(path).details ?? []));
      return null;
    }
  }
  const isArray = Array.isArray(parsed);
  if (typeof parsed !== 'object' || parsed === null || isArray !== (kind === 'array')) {
    details.push({ path, message: `${path} must be ${article}` });
    return null;
  }
  return { value: parsed, text: typeof value === 'string' ? value : JSON.stringify(value) };
}

function checkConfig(config: Record<string, unknown>, policy: AddressPolicy, mode: 'create' | 'update', details: ErrorDetail[]) {
  const before = details.length;
  const nul = nulCharacters(config, 'configJson');
  if (nul.length > 0) {
    details.push(...nul);
    return undefined;
  }
  for (const key of Object.keys(config)) {
    if (!CONFIG_KEYS.has(key)) details.push({ path: `configJson.${key}`, message: `unknown field "${key}" (configJson holds url, headers, body and secret)` });
  }
  collect(details, () => configShape.validateSync(config, { abortEarly: false, strict: true }));
  // yup reports nested paths without the prefix; put it back so every detail names configJson.*
  for (const detail of details.slice(before)) {
    if (!detail.path.startsWith('configJson')) detail.path = detail.path ? `configJson.${detail.path}` : 'configJson';
  }

  const url = typeof config.url === 'string' ? checkUrl(config.url, policy, details) : '';
  const headers = isPlainObject(config.headers) ? checkHeaders(config.headers, details) : {};
  const contentType = contentTypeHeader(headers)?.[1] ?? DEFAULT_CONTENT_TYPE;
  const body = typeof config.body === 'string' && config.body !== '' ? config.body : null;
  if (body !== null) {
    for (const problem of checkTemplate(body, contentType)) details.push({ path: 'configJson.body', message: problem.message });
  }
  const secret = checkSecret(config.secret, mode, details);
  return { url, headers, body, secret };
}

function checkUrl(text: string, policy: AddressPolicy, details: ErrorDetail[]): string {
  const fail = (message: string) => {
    details.push({ path: 'configJson.url', message });
    return text;
  };
  if (text.length > MAX_URL_LENGTH) return fail(`configJson.url must be at most ${MAX_URL_LENGTH} characters`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail('configJson.url must be an absolute https:// URL');
  }
  if (url.protocol !== 'https:') return fail(`configJson.url must use https, not ${url.protocol.replace(':', '')}`);
  if (url.username || url.password) return fail('configJson.url must not contain a user name or password; send credentials in a header');
  const verdict = policy.checkHost(url.hostname);
  if (!verdict.allowed) return fail(`configJson.url host is not allowed: ${verdict.reason}`);
  return text;
}

function checkHeaders(headers: Record<string, unknown>, details: ErrorDetail[]): Record<string, string> {
  const entries = Object.entries(headers);
  if (entries.length > MAX_HEADERS) {
    details.push({ path: 'configJson.headers', message: `configJson.headers may hold at most ${MAX_HEADERS} headers` });
  }
  const seen = new Map<string, string>();
  const valid: Record<string, string> = {};
  for (const [name, value] of entries) {
    const path = `configJson.headers.${name}`;
    const problem = headerProblem(name, value, seen);
    if (problem) {
      details.push({ path, message: `${path} ${problem}` });
      continue;
    }
    seen.set(name.toLowerCase(), name);
    valid[name] = value as string;
  }
  return valid;
}

function headerProblem(name: string, value: unknown, seen: Map<string, string>): string | null {
  const lower = name.toLowerCase();
  if (!TOKEN.test(name)) return 'is not a valid header name (letters, digits and !#$%&\'*+.^_`|~- only)';
  if (RESERVED_HEADERS.has(lower) || RESERVED_PREFIXES.some((prefix) => lower.startsWith(prefix))) {
    return 'is reserved and cannot be configured';
  }
  if (MOZHNO_HEADERS[lower]) return MOZHNO_HEADERS[lower];
  if (seen.has(lower)) return `repeats "${seen.get(lower)}" (header names are case-insensitive)`;
  if (typeof value !== 'string') return 'must be a string';
  if (/[\r\n\0]/.test(value)) return 'must not contain CR, LF or NUL';
  if (!HEADER_VALUE.test(value)) return 'must be printable text (Latin-1; no control characters)';
  if (Buffer.byteLength(value) > MAX_HEADER_VALUE_BYTES) return `must be at most ${MAX_HEADER_VALUE_BYTES} bytes`;
  return null;
}

function checkSecret(value: unknown, mode: 'create' | 'update', details: ErrorDetail[]): SecretChange {
  if (value === undefined || value === null || value === '') return { kind: 'none' };
  if (typeof value !== 'string') return { kind: 'none' }; // the shape check reported it
  if (value === SECRET_MASK) {
    if (mode === 'update') return { kind: 'keep' };
    details.push({ path: 'configJson.secret', message: `configJson.secret "${SECRET_MASK}" keeps a stored secret, and a new integration has none` });
    return { kind: 'none' };
  }
  if (!isValidSecret(value)) {
    details.push({ path: 'configJson.secret', message: 'configJson.secret must be "whsec_" followed by the base64 of 24 to 64 random bytes' });
    return { kind: 'none' };
  }
  return { kind: 'set', secret: value };
}

function checkEvents(list: unknown[], details: ErrorDetail[]): EventCode[] {
  if (list.length === 0) {
    details.push({ path: 'eventSubscriptionsJson', message: 'eventSubscriptionsJson must name at least one event' });
    return [];
  }
  const codes: EventCode[] = [];
  list.forEach((code, i) => {
    const path = `eventSubscriptionsJson[${i}]`;
    if (!isEventCode(code)) {
      details.push({ path, message: `${path} is not an event code: ${JSON.stringify(code)} (events: ${EVENT_CODES.join(', ')})` });
    } else if (codes.includes(code)) {
      details.push({ path, message: `${path} repeats "${code}"` });
    } else {
      codes.push(code);
    }
  });
  return codes;
}

/** The configJson text to store and answer: the secret never leaves, its place reads "********". */
function maskSecret(text: string, secret: SecretChange): string {
  if (secret.kind !== 'set') return text;
  const literal = JSON.stringify(secret.secret);
  const masked = text.split(literal).join(JSON.stringify(SECRET_MASK));
  if ((JSON.parse(masked) as { secret?: unknown }).secret === SECRET_MASK) return masked;
  // The secret field written with escapes (e.g. "\/", while the same text appears plainly
  // elsewhere): give up the client's formatting rather than the secret.
  return JSON.stringify({ ...(JSON.parse(text) as object), secret: SECRET_MASK });
}
