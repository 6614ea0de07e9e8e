import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseCidrList, type Cidr } from './delivery/address-rules.js';

export type Plan = 'free' | 'pro' | 'enterprise';
export const PLANS: readonly Plan[] = ['free', 'pro', 'enterprise'];

export interface Config {
  /** DATABASE_URL, default postgres://localhost:5432/mozhno */
  databaseUrl: string;
  /** REDIS_URL, default redis://127.0.0.1:6379; on a cluster, any one node (the others are discovered) */
  redisUrl: string;
  /** REDIS_CLUSTER: connect in Redis Cluster mode, default false; needs a {hash-tag} QUEUE_PREFIX */
  redisCluster: boolean;
  /** PORT of the api, default 8080 */
  port: number;
  /** WEBHOOK_TIMEOUT_MS bounds a whole delivery attempt, default 30000 */
  webhookTimeoutMs: number;
  /** WEBHOOK_ALLOWED_CIDRS exempts these from the private-address rules, default none */
  webhookAllowedCidrs: readonly Cidr[];
  /** WEBHOOK_CA_FILE: extra trusted CA certificates (PEM text, read at start), default none */
  webhookCa: string | null;
  /** WORKER_CONCURRENCY: deliveries one worker process runs at once, default 200 (see DEFAULT_WORKER_CONCURRENCY) */
  workerConcurrency: number;
  /** WORKER_METRICS_PORT: where a worker serves /metrics, default 9464; 0 turns it off */
  workerMetricsPort: number;
  /** DELIVERY_RETENTION: delivery records kept per integration, default 100 */
  deliveryRetention: number;
  /** EVENT_RETENTION_DAYS: queued events older than this are deleted by the workers; default unset, every event kept */
  eventRetentionDays: number | null;
  /** WEBHOOK_MAX_IN_FLIGHT: deliveries of one integration in flight across all workers, default 8 */
  webhookMaxInFlight: number;
  /** WEBHOOK_MAX_BACKLOG: deliveries of one integration waiting for a slot; later ones fail unsent (E_BACKLOG), default 10000 */
  webhookMaxBacklog: number;
  /** PLAN_LIMITS: integrations a project may hold per plan */
  planLimits: Readonly<Record<Plan, number>>;
  /** ADMIN_USER / ADMIN_PASSWORD guard Bull Board; no password → Bull Board answers 404 */
  adminUser: string;
  adminPassword: string | null;
  /** QUEUE_PREFIX of every BullMQ key, default mozhno; `{mozhno}` on Redis Cluster */
  queuePrefix: string;
  /** LOG_LEVEL for pino, default info */
  logLevel: string;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
  }
}

const DEFAULT_PLAN_LIMITS: Record<Plan, number> = { free: 3, pro: 20, enterprise: 100 };
/**
 * A delivery waits on four round trips in turn (its slot in Redis, the endpoint,
 * its record in PostgreSQL, BullMQ finishing the job), about twice what a bare
 * queue job waits, so at 100 a busy worker left CPU idle: on the 2-core bench
 * machine 200 delivers ~6 % more (5 250 → 5 580 a second, 0.62 → 0.65 of bare
 * BullMQ, which is no faster at 200; npm run bench, 3 rounds each) for ~20 MiB more
 * per worker.
 */
export const DEFAULT_WORKER_CONCURRENCY = 200;
/**
 * libuv threads a worker process starts with (UV_THREADPOOL_SIZE, read once at start; also
 * set by package.json's worker script and docker/entrypoint.sh). Endpoint names go to c-ares,
 * which needs none; getaddrinfo holds one until its resolver answers: up to 8 fallback lookups
 * of the delivery client (names the nameservers give no address of), plus PostgreSQL's and Redis's own.
 */
export const WORKER_THREAD_POOL_SIZE = 64;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

type Env = Readonly<Record<string, string | undefined>>;

/** Reads every variable of SPEC §8 once; throws a ConfigError naming the first bad one. */
export function loadConfig(env: Env = process.env): Readonly<Config> {
  const read = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === '' ? undefined : value;
  };
  const config: Config = {
    databaseUrl: url('DATABASE_URL', read('DATABASE_URL') ?? 'postgres://localhost:5432/mozhno', ['postgres:', 'postgresql:']),
    redisUrl: redisUrl(read('REDIS_URL') ?? 'redis://127.0.0.1:6379'),
    redisCluster: flag('REDIS_CLUSTER', read('REDIS_CLUSTER'), false),
    port: integer('PORT', read('PORT'), 8080, 0, 65535),
    webhookTimeoutMs: integer('WEBHOOK_TIMEOUT_MS', read('WEBHOOK_TIMEOUT_MS'), 30_000, 100, 600_000),
    webhookAllowedCidrs: cidrs(read('WEBHOOK_ALLOWED_CIDRS')),
    webhookCa: caFile(read('WEBHOOK_CA_FILE')),
    workerConcurrency: integer('WORKER_CONCURRENCY', read('WORKER_CONCURRENCY'), DEFAULT_WORKER_CONCURRENCY, 1, 10_000),
    workerMetricsPort: integer('WORKER_METRICS_PORT', read('WORKER_METRICS_PORT'), 9464, 0, 65535),
    deliveryRetention: integer('DELIVERY_RETENTION', read('DELIVERY_RETENTION'), 100, 1, 100_000),
    eventRetentionDays: integer('EVENT_RETENTION_DAYS', read('EVENT_RETENTION_DAYS'), null, 1, 36_500),
    webhookMaxInFlight: integer('WEBHOOK_MAX_IN_FLIGHT', read('WEBHOOK_MAX_IN_FLIGHT'), 8, 1, 10_000),
    webhookMaxBacklog: integer('WEBHOOK_MAX_BACKLOG', read('WEBHOOK_MAX_BACKLOG'), 10_000, 1, 10_000_000),
    planLimits: planLimits(read('PLAN_LIMITS')),
    adminUser: read('ADMIN_USER') ?? 'admin',
    adminPassword: adminPassword(read('ADMIN_PASSWORD')),
    queuePrefix: queuePrefix(read('QUEUE_PREFIX') ?? 'mozhno'),
    logLevel: oneOf('LOG_LEVEL', read('LOG_LEVEL') ?? 'info', LOG_LEVELS),
  };
  if (config.redisCluster && redisDatabase(config.redisUrl) !== 0) {
    // A cluster has database 0 only, and cluster mode connects without selecting one.
    throw new ConfigError('REDIS_URL', `names database ${redisDatabase(config.redisUrl)}, but a Redis Cluster (REDIS_CLUSTER true) has only database 0: leave the number out`);
  }
  if (config.redisCluster && !/^\{[^}]+\}/.test(config.queuePrefix)) {
    // BullMQ's scripts touch several keys of the queue at once: on a cluster they must share one slot.
    throw new ConfigError('QUEUE_PREFIX', `must start with a {hash-tag} when REDIS_CLUSTER is true, e.g. {${config.queuePrefix}}`);
  }
  return Object.freeze(config);
}

function flag(name: string, value: string | undefined, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (['true', '1', 'yes'].includes(value.toLowerCase())) return true;
  if (['false', '0', 'no'].includes(value.toLowerCase())) return false;
  throw new ConfigError(name, `must be true or false, got "${value}"`);
}

function url(name: string, value: string, protocols: string[]): string {
  const schemes = protocols.map((p) => `${p}//`).join(' or ');
  const form = `${schemes}user:password@host:port/name`;
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(name, `not a URL (not shown: it may hold a password); expected ${form}, with a "/", "@", ":" or "%" in the password written %2F, %40, %3A or %25`);
  }
  if (!protocols.includes(parsed.protocol) || !value.slice(parsed.protocol.length).startsWith('//')) {
    throw new ConfigError(name, `must start with ${schemes}, got ${redact(value)}`);
  }
  // A "/" left as it is in a password ends the host there: the rest of the password then reads as a path.
  if (parsed.pathname.includes('@')) throw new ConfigError(name, `holds an "@" after the host: write a "/" in the password as %2F (got ${redact(value)})`);
  return value;
}

/**
 * REDIS_URL, whose path is the database number (ioredis also takes `?db=`): anything but digits
 * there would reach Redis as `SELECT NaN` and end the process with an uncaught ReplyError.
 */
function redisUrl(value: string): string {
  url('REDIS_URL', value, ['redis:', 'rediss:']);
  const { pathname, searchParams } = new URL(value);
  if (pathname !== '' && pathname !== '/' && !/^\/\d+$/.test(pathname)) {
    throw new ConfigError('REDIS_URL', `the path after the host is the database number, as in redis://host:6379/2, or nothing for 0; got ${redact(value)}`);
  }
  const db = searchParams.get('db');
  if (db !== null && !/^\d+$/.test(db)) throw new ConfigError('REDIS_URL', `?db= must be a database number, as in ?db=2, got "${db}"`);
  return value;
}

/** The database REDIS_URL selects: its path, else its `?db=` (as ioredis reads them), else 0. */
export function redisDatabase(redisUrl: string): number {
  const { pathname, searchParams } = new URL(redisUrl);
  return Number(pathname.slice(1) || searchParams.get('db') || 0);
}

function integer<F extends number | null>(name: string, value: string | undefined, fallback: F, min: number, max: number): number | F {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new ConfigError(name, `must be a whole number between ${min} and ${max}, got "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
  return n;
}

function oneOf(name: string, value: string, allowed: string[]): string {
  if (!allowed.includes(value)) throw new ConfigError(name, `must be one of ${allowed.join(', ')}, got "${value}"`);
  return value;
}

function cidrs(value: string | undefined): Cidr[] {
  if (value === undefined) return [];
  try {
    return parseCidrList(value);
  } catch (err) {
    throw new ConfigError('WEBHOOK_ALLOWED_CIDRS', (err as Error).message);
  }
}

function caFile(path: string | undefined): string | null {
  if (path === undefined) return null;
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('WEBHOOK_CA_FILE', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0 || blocks.length !== pem.split('-----BEGIN CERTIFICATE-----').length - 1) {
    throw new ConfigError('WEBHOOK_CA_FILE', `${path} holds no PEM certificate, or one without its END line`);
  }
  // TLS would skip a certificate it cannot parse without a word, and deliveries would fail later as E_TLS.
  blocks.forEach((block, i) => {
    try {
      new X509Certificate(block);
    } catch (err) {
      throw new ConfigError('WEBHOOK_CA_FILE', `certificate ${i + 1} in ${path} cannot be read: ${(err as Error).message}`);
    }
  });
  return pem;
}

function planLimits(value: string | undefined): Record<Plan, number> {
  if (value === undefined) return { ...DEFAULT_PLAN_LIMITS };
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new ConfigError('PLAN_LIMITS', `must be a JSON object like {"free":3,"pro":20,"enterprise":100}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError('PLAN_LIMITS', `must be a JSON object like {"free":3,"pro":20,"enterprise":100}`);
  }
  const limits = { ...DEFAULT_PLAN_LIMITS };
  for (const [plan, limit] of Object.entries(parsed)) {
    if (!PLANS.includes(plan as Plan)) throw new ConfigError('PLAN_LIMITS', `unknown plan "${plan}" (plans: ${PLANS.join(', ')})`);
    if (!Number.isInteger(limit) || (limit as number) < 0) {
      throw new ConfigError('PLAN_LIMITS', `limit of "${plan}" must be a whole number ≥ 0`);
    }
    limits[plan as Plan] = limit as number;
  }
  return limits;
}

function queuePrefix(value: string): string {
  // BullMQ joins keys with ':'; a prefix with spaces or braces out of pairs breaks Cluster slotting.
  if (!/^(\{[A-Za-z0-9_.-]+\}|[A-Za-z0-9_.-]+)(:[A-Za-z0-9_.{}-]+)*$/.test(value)) {
    throw new ConfigError('QUEUE_PREFIX', `must be letters, digits, "_.-:" or a {hash-tag}, got "${value}"`);
  }
  return value;
}

/** The shortest ADMIN_PASSWORD taken: it guards Bull Board from whoever reaches the api, with no limit on tries. */
export const MIN_ADMIN_PASSWORD_CHARS = 12;

function adminPassword(value: string | undefined): string | null {
  if (value === undefined) return null;
  // Counted, never shown: the message must not hold the password.
  if ([...value].length < MIN_ADMIN_PASSWORD_CHARS) {
    throw new ConfigError('ADMIN_PASSWORD', `must be at least ${MIN_ADMIN_PASSWORD_CHARS} characters (it guards Bull Board, which anyone who reaches the api may try passwords on); e.g. openssl rand -base64 18`);
  }
  return value;
}

/**
 * A connection URL as a message may show it: scheme, user, host, port and a plain database name,
 * and of the query the parameters that say where and as whom it connects (`?host=` of a socket
 * form). Never a password, wherever a mistyped URL put it: in the password field (shown as ****),
 * in the query (`?password=`, which the drivers honour: any other parameter is shown as `…`) or in
 * a path that is not a plain name (shown as `/…`). A value that is not a URL is not shown at all.
 */
export function redact(value: string): string {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    return '(a value that is not a URL, not shown)';
  }
  const credentials = parsed.username || parsed.password ? `${parsed.username}${parsed.password ? ':****' : ''}@` : '';
  const path = parsed.pathname === '' || /^\/[\w.-]*$/.test(parsed.pathname) ? parsed.pathname : '/…';
  const shown = [...parsed.searchParams].filter(([name]) => SHOWN_PARAMETERS.has(name)).map(([name, v]) => `${name}=${encodeURIComponent(v).replace(/%2F/g, '/')}`);
  const query = parsed.search === '' ? '' : `?${[...shown, ...(shown.length < [...parsed.searchParams].length ? ['…'] : [])].join('&')}`;
  return `${parsed.protocol}//${credentials}${parsed.host}${path}${query}`;
}

/** Query parameters of a connection URL that hold no secret: where it connects, and as whom. */
const SHOWN_PARAMETERS = new Set(['host', 'port', 'user', 'sslmode']);
