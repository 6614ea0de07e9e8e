import { DelayedError, Queue, Worker, type Job } from 'bullmq';
import type { Config } from '../config.js';
import { isConnectionError, isLoginRefused } from '../db/errors.js';
import { createDb } from '../db/knex.js';
import { SelfVacuum } from '../db/vacuum.js';
import { EventRetention } from '../events/retention.js';
import type { Logger } from '../logger.js';
import { DeliveryTally } from '../ops/delivery-tally.js';
import { WorkerMetrics } from '../ops/metrics.js';
import { AddressPolicy } from './address-rules.js';
import { Deliverer } from './deliver.js';
import { hasRecord } from './deliveries-store.js';
import { WebhookClient } from './http-client.js';
import { IntegrationLoader } from './integration-loader.js';
import { OutcomeRecorder } from './outcome-recorder.js';
import { Parking, wasParked } from './parking.js';
import { createWorkerConnection, QUEUE_NAME, type DeliveryJobData } from './queue.js';

export interface DeliveryWorkerOptions {
  /** BullMQ lock and stall timing; the defaults suit production, tests shorten them. */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** How long a job whose integration could not be read waits before it runs again; tests shorten it. */
  readRetryMs?: number;
  /** Resolver for the SSRF guard; tests point names at the local sink. */
  lookup?: ConstructorParameters<typeof WebhookClient>[0]['lookup'];
  /** How long PostgreSQL may keep refusing the login before `healthy()` says no; tests shorten it. */
  refusedUnhealthyAfterMs?: number;
}

export interface DeliveryWorker {
  worker: Worker<DeliveryJobData>;
  metrics: WorkerMetrics;
  /**
   * False once PostgreSQL has kept refusing the worker's login for `refusedUnhealthyAfterMs`
   * (2 minutes by default; a gap of over a minute without a refused read starts the count
   * again), until a read gets through: jobs wait meanwhile, but a password rotated in the
   * Secret and not in the process never heals by waiting. A restart, which the liveness probe
   * then asks for, picks the new one up or names the cause at start.
   */
  healthy(): boolean;
  /** Stops taking jobs, lets those in flight finish (each bounded by WEBHOOK_TIMEOUT_MS), saves their outcomes. */
  close(): Promise<void>;
}

/** The worker process's composition root. */
export function startDeliveryWorker(config: Readonly<Config>, log: Logger, options: DeliveryWorkerOptions = {}): DeliveryWorker {
  const db = createDb(config.databaseUrl, { poolMax: 10, log });
  const client = new WebhookClient({
    timeoutMs: config.webhookTimeoutMs,
    policy: new AddressPolicy(config.webhookAllowedCidrs),
    ca: config.webhookCa,
    ...(options.lookup ? { lookup: options.lookup } : {}),
  });
  const recorder = new OutcomeRecorder(db, log, { retention: config.deliveryRetention });
  const vacuum = new SelfVacuum(db, log); // only where autovacuum is off
  vacuum.start();
  const eventRetention = config.eventRetentionDays === null ? null : new EventRetention(db, log, { days: config.eventRetentionDays });
  eventRetention?.start();
  const connection = createWorkerConnection(config);
  connection.on('error', () => undefined); // the worker's own 'error' event reports outages once
  const tally = new DeliveryTally(connection, config.queuePrefix, log);
  const metrics = new WorkerMetrics(tally);
  const loader = new IntegrationLoader(db, config.databaseUrl, log);
  void loader.start(); // until it listens, nothing is cached
  const deliverer = new Deliverer({ loader, client, recorder, log, metrics });

  // Where parked jobs are woken from; shares the connection.
  const queue = new Queue<DeliveryJobData>(QUEUE_NAME, { connection, prefix: config.queuePrefix });
  queue.on('error', () => undefined); // reported once through the worker's own 'error' event (BullMQ would print each to the console)
  const parking = new Parking(connection, queue, config, log);
  const { limit } = parking;

  const readRetryMs = options.readRetryMs ?? 5_000;
  const outage = new OutageLog(log, readRetryMs);
  const refusedUnhealthyAfterMs = options.refusedUnhealthyAfterMs ?? 120_000;
  const drop = (job: Job<DeliveryJobData>, reason: string): string => {
    metrics.dropped.inc({ reason });
    log.info({ integrationId: job.data.integrationId, eventId: job.data.eventId, action: job.data.vars.action, reason }, 'delivery dropped');
    return `dropped: ${reason}`;
  };
  const processJob = async (job: Job<DeliveryJobData>, token?: string): Promise<string> => {
    const { integrationId } = job.data;
    const holder = job.id!;
    // The slot comes first, before any database read: a backlog for one slow endpoint costs a
    // couple of Redis calls per job, not a query each.
    if (!(await limit.tryAcquire(integrationId, holder, wasParked(job)))) {
      const refused = await parking.park(job, token);
      if (refused !== null) {
        // WEBHOOK_MAX_BACKLOG wait already: Redis would otherwise hold a hanging endpoint's line without
        // bound. A job its integration no longer wants is dropped as it would be at its turn.
        // (Unreadable now: it is refused all the same; its record waits for PostgreSQL.)
        const target = await deliverer.target(job.data).catch((err: unknown) => {
          if (isConnectionError(err)) return null;
          throw err; // a broken schema, a bug: seen, as below
        });
        if (target !== null && 'dropped' in target) return drop(job, target.dropped);
        const result = await deliverer.refuseBacklog(job.data, refused.overBacklog, parking.maxBacklog);
        return `failure: ${result.errorCode}`;
      }
      metrics.parked.inc();
      throw new DelayedError();
    }
    const unhold = limit.hold(integrationId, holder);
    try {
      let target: Awaited<ReturnType<Deliverer['target']>>;
      try {
        target = await deliverer.target(job.data);
      } catch (err) {
        // The integration could not be read because PostgreSQL cannot be reached. Nothing was sent:
        // the job waits a moment and runs again, its one attempt still to make, rather than failing
        // unsent. Any other error (a broken schema, a bug) fails the job, as it should be seen.
        if (!isConnectionError(err)) throw err;
        metrics.deferred.inc();
        outage.report(err);
        await job.moveToDelayed(Date.now() + readRetryMs, token);
        throw new DelayedError();
      }
      outage.over();
      if ('dropped' in target) return drop(job, target.dropped);
      const result = await deliverer.deliver(job.data, target);
      limit.settle(integrationId, holder, result.errorCode === 'E_TIMEOUT');
      return result.ok ? 'success' : `failure: ${result.errorCode}`;
    } finally {
      unhold();
      limit.release(integrationId, holder);
    }
  };

  const worker = new Worker<DeliveryJobData>(QUEUE_NAME, processJob, {
    connection,
    prefix: config.queuePrefix,
    concurrency: config.workerConcurrency,
    // A worker killed mid-delivery: its job is taken up again once (same webhook-id), then given up.
    maxStalledCount: 1,
    lockDuration: options.lockDurationMs ?? 30_000,
    stalledInterval: options.stalledIntervalMs ?? 30_000,
  });
  let lastError = '';
  worker.on('error', (err) => {
    if (err.message !== lastError) log.error({ err: err.message }, 'worker error');
    lastError = err.message;
  });
  worker.on('failed', (job, err) => {
    log.error({ jobId: job?.id, err: err.message }, 'delivery job failed');
    // Failed by BullMQ on its second stall (maxStalledCount 1), unrun: its outcome is unknown, not lost
    // unsaid. Unless an attempt of it is recorded already (a run whose worker died after saving it, or
    // one still alive that lost its lock): that record says more than E_STALLED would.
    if (job && err.message === STALLED_TOO_OFTEN) {
      const { integrationId, webhookId } = job.data;
      hasRecord(db, integrationId, webhookId)
        .then((recorded) => (recorded ? undefined : deliverer.recordStalled(job.data)))
        .catch((recordErr: unknown) => log.error({ jobId: job.id, err: (recordErr as Error).message }, 'could not record a stalled delivery'));
    }
  });

  return {
    worker,
    metrics,
    healthy: () => !outage.loginRefusedFor(refusedUnhealthyAfterMs),
    async close() {
      await vacuum.stop(); // at once: a VACUUM under way is cancelled, not waited for
      recorder.hurry(5_000); // outcomes waiting for PostgreSQL do not hold the shutdown up for long
      // Taking jobs stops first; a batch of the event retention under way (a few thousand rows) ends meanwhile.
      await Promise.all([worker.close(), eventRetention?.stop()]);
      await tally.close();
      await parking.close();
      await queue.close();
      await recorder.close();
      await loader.stop();
      await client.close();
      await db.destroy();
      connection.disconnect();
    },
  };
}

const REFUSAL_GAP_MS = 60_000;

/** BullMQ's reason for a job that stalled more often than maxStalledCount allows. */
const STALLED_TOO_OFTEN = 'job stalled more than allowable limit';

/** One warning when jobs start waiting for PostgreSQL, one line when they stop: not one per job. */
class OutageLog {
  private deferred = 0;
  /** Since when reads have had their login refused (null otherwise), and when the last one did. */
  private refusedSince: number | null = null;
  private lastRefused = 0;
  private tripped = false;

  constructor(
    private readonly log: Logger,
    private readonly retryMs: number,
  ) {}

  report(err: unknown): void {
    if (!isLoginRefused(err)) {
      this.refusedSince = null;
      this.tripped = false;
    } else {
      const now = Date.now();
      // Refusals a minute apart or more are not one stretch: jobs may simply have stopped coming.
      if (this.refusedSince === null || now - this.lastRefused > REFUSAL_GAP_MS) this.refusedSince = now;
      this.lastRefused = now;
    }
    if (this.deferred++ === 0) {
      this.log.warn({ err: (err as Error).message }, `integrations cannot be read; jobs wait ${this.retryMs / 1000} s and run again`);
    }
  }

  /** Whether reads have had their login refused for `ms` in one stretch; it stays so until a read gets through. */
  loginRefusedFor(ms: number): boolean {
    if (this.refusedSince !== null && this.lastRefused - this.refusedSince >= ms) this.tripped = true;
    return this.tripped;
  }

  over(): void {
    this.refusedSince = null;
    this.tripped = false;
    if (this.deferred === 0) return;
    this.log.info({ deferred: this.deferred }, 'integrations can be read again');
    this.deferred = 0;
  }
}
