import { Queue, type JobsOptions } from 'bullmq';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { redact, redisDatabase } from '../config.js';
import type { EventVariables } from '../events/variables.js';
import { StartupError } from '../lifecycle.js';
import { within } from '../ops/deadline.js';

export const QUEUE_NAME = 'deliveries';

/** What a job carries: enough to deliver without reading the event row again. */
export interface DeliveryJobData {
  integrationId: number;
  /** The integration's version when the job was queued: the worker delivers with that version or a newer one. */
  integrationVersion: number;
  /** null for a test delivery */
  eventId: number | null;
  /** Standard Webhooks `webhook-id`: the same for every attempt of this event at this integration. */
  webhookId: string;
  vars: EventVariables;
  /** ms since epoch when the change committed (events) or the test was asked for; for the latency metric */
  committedAt: number;
  /** How many times a worker took the job and parked it (no in-flight slot free): its safety delay doubles with each. */
  parks?: number;
}

/** Fire-and-forget (SPEC §6): one attempt; finished jobs kept a while for Bull Board, bounded by age and count. */
export const JOB_OPTIONS: JobsOptions = {
  attempts: 1,
  removeOnComplete: { age: 3600, count: 10_000 },
  removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
};

/** BullMQ ids must not be integers nor contain ':'; this one is unique per (event, integration). */
export function deliveryJobId(eventId: number, integrationId: number): string {
  return `e${eventId}-i${integrationId}`;
}

export function webhookIdFor(eventId: number, integrationId: number): string {
  return `msg_e${eventId}_i${integrationId}`;
}

export function testJobId(integrationId: number, nonce: string): string {
  return `t${nonce}-i${integrationId}`;
}

/** A test send's webhook-id: its own each time (a receiver dropping duplicates keeps every test). */
export function testWebhookId(nonce: string): string {
  return `msg_test_${nonce}`;
}

/** A single Redis or a Redis Cluster (REDIS_CLUSTER=true, REDIS_URL naming any one node). */
export type RedisConnection = Redis | Cluster;

export interface RedisSettings {
  redisUrl: string;
  redisCluster: boolean;
}

/**
 * The producer's connection fails fast: with Redis down an enqueue errors at
 * once (the relay retries later) instead of hanging an API request or the relay;
 * a Redis that takes the connection but stops answering fails each command after
 * PRODUCER_COMMAND_TIMEOUT_MS rather than holding the relay's batch (its locked
 * events, its transaction) for as long as TCP takes to give up.
 */
export function createProducerConnection(settings: RedisSettings, commandTimeoutMs = PRODUCER_COMMAND_TIMEOUT_MS): RedisConnection {
  return connect(settings, { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2_000, commandTimeout: commandTimeoutMs });
}

/** Far above any one command's time (an addBulk slice of 100 jobs takes milliseconds, even under load). */
export const PRODUCER_COMMAND_TIMEOUT_MS = 10_000;

/** Workers block on Redis and must wait through outages: BullMQ requires maxRetriesPerRequest null. */
export function createWorkerConnection(settings: RedisSettings): RedisConnection {
  return connect(settings, { maxRetriesPerRequest: null });
}

const retry = (attempt: number) => Math.min(attempt * 200, 5_000);

function connect(settings: RedisSettings, options: RedisOptions): RedisConnection {
  if (!settings.redisCluster) {
    const redis = new Redis(settings.redisUrl, { ...options, retryStrategy: retry });
    // A SELECT refused past the start-up check (Redis was unreachable then, or came back with
    // fewer `databases`): ioredis would report it and go on in database 0. The refusal arrives
    // before the connection is ready, so closing here keeps every command out of database 0; it
    // retries as in an outage. (BullMQ's own copies of the connection lack this, but only block on
    // a marker key there: with this one closed nothing else runs.)
    redis.on('error', (err) => {
      if (isSelectRefused(err)) redis.disconnect(true);
    });
    return redis;
  }
  const url = new URL(settings.redisUrl);
  return new Cluster([{ host: url.hostname, port: Number(url.port || 6379) }], {
    enableOfflineQueue: options.enableOfflineQueue ?? true,
    clusterRetryStrategy: retry,
    redisOptions: {
      ...options,
      ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
      ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
      ...(url.protocol === 'rediss:' ? { tls: { servername: url.hostname } } : {}),
    },
  });
}

export type RedisCheck = { reachable: true } | { reachable: false; cause: unknown };

/** How long the start-up check waits for Redis to answer. */
const CHECK_REDIS_MS = 5_000;

/**
 * Connects once to see whether Redis answers and takes the database REDIS_URL names. A SELECT
 * it refuses (a number beyond its `databases`) throws a StartupError naming REDIS_URL and the
 * server's answer: ioredis would only emit that as an error and go on in database 0, where the
 * jobs are not. A Redis that cannot be reached is answered, not thrown: the api and workers
 * start without it and wait.
 */
export async function checkRedis(settings: RedisSettings): Promise<RedisCheck> {
  const db = redisDatabase(settings.redisUrl);
  const redis = new Redis(settings.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  // connect() only says "Connection is closed."; the cause arrives as an 'error' event.
  let cause: unknown;
  redis.on('error', (err: Error) => {
    if (!isSelectRefused(err)) cause ??= err;
  });
  try {
    // Bounded: a peer that takes the connection and never answers would hold a start-up forever.
    await within(
      (async () => {
        await redis.connect();
        // ioredis sent this SELECT on connecting already; asked again, its answer comes back here.
        await (db === 0 ? redis.ping() : redis.select(db));
      })(),
      CHECK_REDIS_MS,
    );
    return { reachable: true };
  } catch (err) {
    if (isSelectRefused(err)) {
      throw new StartupError(`REDIS_URL names database ${db}, which Redis at ${redact(settings.redisUrl)} refuses (${(err as Error).message}): use one it has (below its \`databases\` setting, 16 by default) or leave the number out for 0`);
    }
    return { reachable: false, cause: cause ?? err };
  } finally {
    redis.disconnect();
  }
}

/**
 * For the api and workers, which start without Redis: stops only on a database Redis refuses.
 * Database 0 needs no SELECT, so nothing to ask.
 */
export async function assertRedisDatabase(settings: RedisSettings): Promise<void> {
  if (redisDatabase(settings.redisUrl) !== 0) await checkRedis(settings);
}

/** Redis's answer refusing a SELECT (ioredis puts the command on the ReplyError). */
function isSelectRefused(err: unknown): boolean {
  const { name, command } = (err ?? {}) as { name?: unknown; command?: { name?: unknown } };
  return name === 'ReplyError' && command?.name === 'select';
}

export function createDeliveryQueue(connection: RedisConnection, prefix: string): Queue<DeliveryJobData> {
  return new Queue<DeliveryJobData>(QUEUE_NAME, { connection, prefix, defaultJobOptions: JOB_OPTIONS });
}
