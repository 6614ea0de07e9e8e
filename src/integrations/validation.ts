import { boolean, mixed, object, string, ValidationError } from 'yup';
import type { AddressPolicy } from '../delivery/address-rules.js';
import { isValidSecret } from '../delivery/signature.js';
import { EVENT_CODES, isEventCode, type EventCode } from '../events/codes.js';
import { validationFailed, type ErrorDetail } from '../http/errors.js';
import { nameField } from '../http/schemas.js';
import { detailsOf, isPlainObject, jsonObjectBody, MAX_DEPTH, nestedDeeperThan, unstorableText, tooDeep } from '../http/validation.js';
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
/** Far above any real one; receivers' servers refuse a head of more than 8–16 KiB. */
export const MAX_HEADER_NAME_LENGTH = 256;

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
// Also refused, beyond SPEC §4: these are set (or deliberately not sent) by mozhno, so a configured value would be dropped silently.
const MOZHNO_HEADERS: Record<string, string> = {
  'user-agent': 'is set by mozhno (mozhno-webhooks/<version>)',
  'accept-encoding': 'is never sent: responses are not decompressed',
  expect: 'is never sent: mozhno sends the body at once and does not wait for 100 Continue',
};
// Header values go on the wire as bytes: tabs and visible Latin-1 only.
const HEADER_VALUE = /^[\t\x20-\x7e\xa0-\xff]*$/;
const CONFIG_KEYS = new Set(['url', 'headers', 'body', 'secret']);
/** What a secret must look like, in the words of every message refusing one. */
const SECRET_FORMAT = '"whsec_" followed by the base64 of 24 to 64 random bytes';

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
  const raw = jsonObjectBody(body);
  const details: ErrorDetail[] = [];
  collect(details, () => topLevel.validateSync(raw, { abortEarly: false, strict: true }));
  if (!details.some((d) => d.path === 'name')) details.push(...unstorableText(raw.name, 'name'));

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
    // The text is kept as sent: a repeated key can hide an unpaired surrogate from the parsed
    // value (checked by field later), and the stored text would hold U+FFFD in its place.
    if (unstorableText(parsed).length === 0) details.push(...unstorableText(value, path));
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
  // A field holding NUL or an unpaired surrogate is reported for that alone; every other field is still checked.
  const nul = unstorableText(config, 'configJson');
  const nulPaths = new Set(nul.map((detail) => detail.path));
  for (const key of Object.keys(config)) {
    if (!CONFIG_KEYS.has(key)) details.push({ path: `configJson.${key}`, message: `unknown field "${key}" (configJson holds url, headers, body and secret)` });
  }
  collect(details, () => configShape.validateSync(config, { abortEarly: false, strict: true }));
  // yup reports nested paths without the prefix; put it back so every detail names configJson.*
  for (const detail of details.slice(before)) {
    if (!detail.path.startsWith('configJson')) detail.path = detail.path ? `configJson.${detail.path}` : 'configJson';
  }

  const urlReported = details.some((detail) => detail.path === 'configJson.url');
  const url = typeof config.url === 'string' && !urlReported ? checkUrl(config.url, policy, details) : String(config.url ?? '');
  const headers = isPlainObject(config.headers) ? checkHeaders(config.headers, details) : {};
  const contentType = contentTypeHeader(headers)?.[1] ?? DEFAULT_CONTENT_TYPE;
  const body = typeof config.body === 'string' && config.body !== '' ? config.body : null;
  if (body !== null) {
    for (const problem of checkTemplate(body, contentType)) details.push({ path: 'configJson.body', message: problem.message });
  }
  const secret = checkSecret(config.secret, mode, details);
  if (nul.length > 0) {
    const others = details.splice(before).filter((detail) => !nulPaths.has(detail.path));
    details.push(...nul, ...others);
  }
  return { url, headers, body, secret };
}

function checkUrl(text: string, policy: AddressPolicy, details: ErrorDetail[]): string {
  const fail = (message: string) => {
    details.push({ path: 'configJson.url', message });
    return text;
  };
  if (text.length > MAX_URL_LENGTH) return fail(`configJson.url must be at most ${MAX_URL_LENGTH} characters`);
  // The URL parser would drop these silently, and the URL is stored and shown as sent.
  if (/[\s\u0000-\u001f\u007f]/.test(text)) return fail('configJson.url must not contain spaces, tabs, line breaks or control characters'); // eslint-disable-line no-control-regex
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail('configJson.url must be an absolute https:// URL');
  }
  if (url.protocol !== 'https:') return fail(`configJson.url must use https, not ${url.protocol.replace(':', '')}`);
  if (!/^https:\/\//i.test(text)) return fail('configJson.url must be an absolute https:// URL'); // `https:host` parses too
  // An empty one (`https://:@host/`) is a user:password part too, which the parser would drop.
  const authority = text.slice('https://'.length).split(/[/?#]/, 1)[0]!;
  if (url.username || url.password || authority.includes('@')) return fail('configJson.url must not contain a user name or password; send credentials in a header');
  if (url.port === '0') return fail('configJson.url port must be between 1 and 65535');
  const verdict = policy.checkHost(url.hostname);
  if (!verdict.allowed) return fail(`configJson.url host is not allowed: ${verdict.reason}`);
  return text;
}

function checkHeaders(headers: Record<string, unknown>, details: ErrorDetail[]): Record<string, string> {
  const entries = Object.entries(headers);
  if (entries.length > MAX_HEADERS) {
    // That one fault, rather than one more for each of thousands of headers; the Content-Type still
    // tells how the body template is checked.
    details.push({ path: 'configJson.headers', message: `configJson.headers may hold at most ${MAX_HEADERS} headers` });
    return Object.fromEntries(entries.filter(([name, value]) => name.toLowerCase() === 'content-type' && typeof value === 'string' && value.trim() !== '')) as Record<string, string>;
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
  if (name.length > MAX_HEADER_NAME_LENGTH) return `is longer than ${MAX_HEADER_NAME_LENGTH} characters`;
  if (RESERVED_HEADERS.has(lower) || RESERVED_PREFIXES.some((prefix) => lower.startsWith(prefix))) {
    return 'is reserved and cannot be configured';
  }
  if (Object.hasOwn(MOZHNO_HEADERS, lower)) return MOZHNO_HEADERS[lower]!;
  if (lower === '__proto__') return 'cannot be a header name here (a JavaScript object would drop it)';
  if (seen.has(lower)) return `repeats "${seen.get(lower)}" (header names are case-insensitive)`;
  if (typeof value !== 'string') return 'must be a string';
  if (/[\r\n\0]/.test(value)) return 'must not contain CR, LF or NUL';
  if (!HEADER_VALUE.test(value)) return 'must be printable text (Latin-1; no control characters)';
  // Latin-1 (checked above) goes on the wire one byte per character.
  if (value.length > MAX_HEADER_VALUE_BYTES) return `must be at most ${MAX_HEADER_VALUE_BYTES} bytes`;
  if (lower === 'content-type' && value.trim() === '') return 'must name a media type, e.g. application/json';
  return null;
}

function checkSecret(value: unknown, mode: 'create' | 'update', details: ErrorDetail[]): SecretChange {
  if (value === undefined || value === null || value === '') return { kind: 'none' };
  if (typeof value !== 'string') return { kind: 'none' }; // the shape check reported it
  if (value === SECRET_MASK) {
    if (mode === 'update') return { kind: 'keep' };
    details.push(nothingToKeep('a new integration'));
    return { kind: 'none' };
  }
  if (!isValidSecret(value)) {
    details.push({ path: 'configJson.secret', message: `configJson.secret must be ${SECRET_FORMAT}` });
    return { kind: 'none' };
  }
  return { kind: 'set', secret: value };
}

/**
 * The body of a secret rotation: none (or `{}`) for a new random secret, or `{"secret": "whsec_…"}`
 * for one the client made. Answers the secret asked for, or null.
 */
export function parseRotation(body: unknown): string | null {
  if (body === undefined) return null;
  const raw = jsonObjectBody(body);
  const details: ErrorDetail[] = Object.keys(raw)
    .filter((key) => key !== 'secret')
    .map((key) => ({ path: key, message: `unknown field "${key}" (a rotation takes only secret, or nothing for a random one)` }));
  const secret = raw.secret;
  if (secret !== undefined && (typeof secret !== 'string' || !isValidSecret(secret))) {
    details.push({ path: 'secret', message: `secret must be ${SECRET_FORMAT} (or left out for a random one)` });
  }
  if (details.length > 0) throw validationFailed(details);
  return (secret as string | undefined) ?? null;
}

/** The mask sent where no secret is stored: the answer would claim a secret while deliveries go unsigned. */
export function nothingToKeep(subject: string): ErrorDetail {
  return { path: 'configJson.secret', message: `configJson.secret "${SECRET_MASK}" keeps a stored secret, and ${subject} has none` };
}

function checkEvents(list: unknown[], details: ErrorDetail[]): EventCode[] {
  if (list.length === 0) {
    details.push({ path: 'eventSubscriptionsJson', message: 'eventSubscriptionsJson must name at least one event' });
    return [];
  }
  // Without repeats there are no more than the event codes: a longer list is that one fault, not one per element.
  if (list.length > EVENT_CODES.length) {
    details.push({ path: 'eventSubscriptionsJson', message: `eventSubscriptionsJson may name at most ${EVENT_CODES.length} events` });
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

const isJsonSpace = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r';

/** The index just past the JSON string that opens at `start` (its closing quote included). */
function endOfString(json: string, start: number): number {
  let i = start + 1;
  for (; i < json.length && json[i] !== '"'; i++) if (json[i] === '\\') i++;
  return i + 1;
}

/** JSON text without the white space between its tokens (strings kept as they are). */
function withoutWhiteSpace(json: string): string {
  let out = '';
  for (let i = 0; i < json.length; i++) {
    const c = json[i]!;
    if (c === '"') {
      const end = endOfString(json, i);
      out += json.slice(i, end);
      i = end - 1;
    } else if (!isJsonSpace(c)) {
      out += c;
    }
  }
  return out;
}

/**
 * The configJson text to store and answer: the secret never leaves, its place reads "********".
 * Text that holds more than its parsed value (a repeated member, an escape such as `\/`) is
 * stored as that value, re-serialized, so nothing it hides can come back. Only the `secret`
 * member is masked: a header holding the same text keeps its value, so what GET answers can be
 * sent back by PUT unchanged. Linear in the text: a request just under 1 MiB costs milliseconds.
 */
function maskSecret(text: string, secret: SecretChange): string {
  const original = JSON.parse(text) as Record<string, unknown>;
  const canonical = JSON.stringify(original);
  const clean = withoutWhiteSpace(text) === canonical;
  if (secret.kind !== 'set') return clean ? text : canonical;
  const expected = JSON.stringify({ ...original, secret: SECRET_MASK });
  if (!clean) return expected;
  // Clean text writes each member once, its name plainly: the `secret` member's value is the one to mask.
  const value = topLevelStringValue(text, 'secret');
  if (value === null) return expected;
  const masked = text.slice(0, value.start) + JSON.stringify(SECRET_MASK) + text.slice(value.end);
  // Client formatting (white space) is kept when that leaves exactly what is expected.
  return withoutWhiteSpace(masked) === expected ? masked : expected;
}

/** Where the string value of a top-level member of a JSON object text starts and ends (quotes included). */
function topLevelStringValue(json: string, name: string): { start: number; end: number } | null {
  const key = JSON.stringify(name);
  const skipSpace = (i: number) => {
    while (isJsonSpace(json[i])) i++;
    return i;
  };
  let depth = 0;
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '"') {
      const start = i;
      i = endOfString(json, i) - 1;
      if (depth !== 1 || json.slice(start, i + 1) !== key) continue;
      const colon = skipSpace(i + 1);
      if (json[colon] !== ':') continue;
      const valueStart = skipSpace(colon + 1);
      return json[valueStart] === '"' ? { start: valueStart, end: endOfString(json, valueStart) } : null;
    }
    if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
  }
  return null;
}
