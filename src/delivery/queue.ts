import { Queue, type JobsOptions } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import type { EventVariables } from '../events/variables.js';

export const QUEUE_NAME = 'deliveries';

/** What a job carries: enough to deliver without reading the event row again. */
export interface DeliveryJobData {
  integrationId: number;
  /** null for a test delivery */
  eventId: number | null;
  /** Standard Webhooks `webhook-id`: the same for every attempt of this event at this integration. */
  webhookId: string;
  vars: EventVariables;
  /** ms since epoch when the change committed (events) or the test was asked for; for the latency metric */
  committedAt: number;
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

/**
 * The producer's connection fails fast: with Redis down an enqueue errors at
 * once (the relay retries later) instead of hanging an API request or the relay.
 */
export function createProducerConnection(redisUrl: string): Redis {
  return new Redis(redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2_000, ...reconnect });
}

/** Workers block on Redis and must wait through outages: BullMQ requires maxRetriesPerRequest null. */
export function createWorkerConnection(redisUrl: string): Redis {
  return new Redis(redisUrl, { maxRetriesPerRequest: null, ...reconnect });
}

const reconnect: RedisOptions = {
  retryStrategy: (attempt) => Math.min(attempt * 200, 5_000),
};

export function createDeliveryQueue(connection: Redis, prefix: string): Queue<DeliveryJobData> {
  return new Queue<DeliveryJobData>(QUEUE_NAME, { connection, prefix, defaultJobOptions: JOB_OPTIONS });
}
