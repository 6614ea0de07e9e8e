import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { apiKeyRoutes } from './apikeys/routes.js';
import { ApiKeyService } from './apikeys/service.js';
import type { Config } from './config.js';
import { assertDatabaseReachable, createDb, type Db } from './db/knex.js';
import { missingMigrations, notMigrated } from './db/migrate.js';
import { environmentRoutes } from './environments/routes.js';
import { EnvironmentService } from './environments/service.js';
import type { Queue } from 'bullmq';
import { assertRedisDatabase, createDeliveryQueue, createProducerConnection, type DeliveryJobData } from './delivery/queue.js';
import { EventLog } from './events/event-log.js';
import { Parking } from './delivery/parking.js';
import { EventRelay, RelayedEvents, type RelayOptions } from './events/relay.js';
import { unqueuedAgeSeconds } from './events/store.js';
import { bullBoard } from './http/bull-board.js';
import { healthRoutes, NotReady } from './ops/health-routes.js';
import { fleetDeliveryMetrics } from './ops/delivery-tally.js';
import { ApiMetrics } from './ops/metrics.js';
import { metricsRoutes } from './ops/metrics-routes.js';
import { EventQueries } from './events/queries.js';
import { eventRoutes } from './events/routes.js';
import { flagRoutes } from './flags/routes.js';
import { integrationRoutes } from './integrations/routes.js';
import { IntegrationService } from './integrations/service.js';
import { AddressPolicy } from './delivery/address-rules.js';
import { FlagService } from './flags/service.js';
import { createApp } from './http/app.js';
import { CHANGE_LOCK_WAIT_MS } from './http/middleware.js';
import { dashboardRoutes } from './dashboard/routes.js';
import { listenRefused } from './lifecycle.js';
import type { Logger } from './logger.js';
import { projectRoutes } from './projects/routes.js';
import { ProjectService } from './projects/service.js';
import { segmentRoutes } from './segments/routes.js';
import { SegmentService } from './segments/service.js';
import { strategyRoutes } from './strategies/routes.js';
import { StrategyService } from './strategies/service.js';

/** How long requests under way may take to finish when the api stops. */
const CLOSE_DEADLINE_MS = 5_000;

export interface ApiServer {
  /** Where the API listens, e.g. http://127.0.0.1:8080 */
  url: string;
  db: Db;
  relay: EventRelay;
  queue: Queue<DeliveryJobData>;
  metrics: ApiMetrics;
  close(): Promise<void>;
}

export interface ApiServerOptions {
  host?: string;
  relay?: RelayOptions;
  /** How long a Redis command may go unanswered (PRODUCER_COMMAND_TIMEOUT_MS); tests shorten it. */
  redisCommandTimeoutMs?: number;
}

/** How long the api, told to stop, waits for its requests and relay before it exits anyway (see src/api.ts). */
export const API_STOP_DEADLINE_MS = 20_000;

/** The api process's composition root: every dependency is built here and nowhere deeper. */
export async function startApiServer(config: Readonly<Config>, log: Logger, options: ApiServerOptions = {}): Promise<ApiServer> {
  // Requests waiting for a lock each hold a connection of the pool: bounded, so a pile-up on one row frees them.
  const db = createDb(config.databaseUrl, { log, lockTimeoutMs: CHANGE_LOCK_WAIT_MS });
  await assertDatabaseReachable(db, config.databaseUrl);
  await assertRedisDatabase(config);
  const redis = createProducerConnection(config, options.redisCommandTimeoutMs);
  let redisDown = false;
  let redisError = 'not connected yet';
  redis.on('error', (err: Error & { code?: string }) => {
    if (!redisDown) log.warn({ err: err.message }, 'Redis unreachable; changes are kept and queued once it is back');
    redisDown = true;
    redisError = err.code ?? err.message;
  });
  redis.on('ready', () => {
    redisDown = false;
    redisError = 'not connected'; // what a later close without an error will say
  });
  const queue = createDeliveryQueue(redis, config.queuePrefix);
  queue.on('error', () => undefined); // reported once through the connection above
  // BullMQ's calls wait for the connection's first `ready`, however long Redis is down at start;
  // those a request or a scrape waits on fail at once instead, as plain commands do.
  const redisReady = () => redis.status === 'ready';
  const metrics = new ApiMetrics({
    jobCounts: () => (redisReady() ? queue.getJobCounts('waiting', 'active', 'delayed', 'failed') : Promise.reject(new Error(redisError))),
    relayLagSeconds: () => unqueuedAgeSeconds(db),
    fleetDeliveries: () => fleetDeliveryMetrics(redis, config.queuePrefix),
  });
  const parking = new Parking(redis, queue, config, log);
  const relay = new EventRelay(db, queue, parking, new RelayedEvents(redis, `${config.queuePrefix}:relayed`), config.databaseUrl, log, {
    ...options.relay,
    onRelayed: (events, jobs, parked) => {
      metrics.eventsRelayed.inc(events);
      metrics.jobsQueued.inc(jobs);
      metrics.jobsQueuedParked.inc(parked);
    },
  });
  const events = new EventLog(relay.wake);
  const apiKeys = new ApiKeyService(db, events);
  const app = createApp({
    log,
    authenticate: (token) => apiKeys.authenticate(token),
    apiRouters: [
      projectRoutes(new ProjectService(db, events, config.planLimits)),
      environmentRoutes(new EnvironmentService(db, events)),
      flagRoutes(new FlagService(db, events)),
      strategyRoutes(new StrategyService(db, events)),
      segmentRoutes(new SegmentService(db, events)),
      apiKeyRoutes(apiKeys),
      eventRoutes(new EventQueries(db)),
      integrationRoutes(new IntegrationService(db, config.planLimits, queue, redisReady), new AddressPolicy(config.webhookAllowedCidrs)),
    ],
    publicRouters: [
      dashboardRoutes(),
      healthRoutes({
        // Reachable, and migrated at least as far as this code: an api on an older schema would
        // answer 500s (a new pod started before the migrate Job finished).
        postgres: async () => {
          const missing = await missingMigrations(db);
          if (missing.length > 0) throw new NotReady(notMigrated(missing));
        },
        // Without an offline queue a ping while disconnected only says the stream is not writeable: name the cause.
        redis: () => (redisReady() ? redis.ping() : Promise.reject(new Error(redisError))),
      }),
      metricsRoutes(metrics.exposition),
    ],
    middleware: [bullBoard(queue, { user: config.adminUser, password: config.adminPassword })],
    onRequest: ({ method, route, status, seconds }) => metrics.requests.observe({ method, route, status: String(status) }, seconds),
  });

  await relay.start();
  const server: Server = app.listen(config.port, options.host);
  try {
    await once(server, 'listening');
  } catch (err) {
    throw listenRefused('PORT', config.port, err, 'stop the other process or set PORT');
  }
  const { port } = server.address() as AddressInfo;
  const url = `http://${options.host && options.host !== '0.0.0.0' && options.host !== '::' ? options.host : 'localhost'}:${port}`;

  return {
    url,
    db,
    relay,
    queue,
    metrics,
    async close() {
      server.close();
      server.closeIdleConnections();
      // Requests under way get a few seconds; a client that keeps its connection busy does not hold the stop.
      const cut = setTimeout(() => server.closeAllConnections(), CLOSE_DEADLINE_MS);
      await once(server, 'close');
      clearTimeout(cut);
      await relay.stop();
      await parking.close();
      await queue.close();
      redis.disconnect();
      await db.destroy();
    },
  };
}

