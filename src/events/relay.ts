import type { JobsOptions, Queue } from 'bullmq';
import { groupBy } from '../collections.js';
import type { Knex } from 'knex';
import type { Db } from '../db/knex.js';
import { PgListener } from '../db/listener.js';
import { recordedPairs } from '../delivery/deliveries-store.js';
import type { QueuedParked } from '../delivery/in-flight-limit.js';
import { placeInLine, type Parking } from '../delivery/parking.js';
import { deliveryJobId, JOB_OPTIONS, webhookIdFor, type DeliveryJobData, type RedisConnection } from '../delivery/queue.js';
import { enabledIntegrationsOf } from '../integrations/store.js';
import type { Logger } from '../logger.js';
import { claimUnqueuedEvents, eventVariables } from './store.js';

const ADD_BULK_SLICE = 100;
/** pg_advisory_xact_lock key held by the relay that is queueing a batch ('mzrel' in ASCII). */
export const RELAY_LOCK = 0x6d7a72656c;
const ANOTHER_RELAY = Symbol('another relay holds the turn');
/** Well above the longest wait of a batch on Redis (a command times out after 10 s, see createProducerConnection). */
const IDLE_IN_BATCH_TIMEOUT_MS = 30_000;

export interface RelayOptions {
  /** Events taken per transaction. */
  batchSize?: number;
  /** Fallback poll, in case a wake-up was missed (another process committed while LISTEN reconnected). */
  pollMs?: number;
  /** Longest wait between attempts while Redis or PostgreSQL fail. */
  maxBackoffMs?: number;
  /** Told after each committed batch, for metrics. */
  onRelayed?: (events: number, jobs: number, parked: number) => void;
}

/**
 * The outbox relay: queues committed events that are not queued yet, oldest
 * first, one BullMQ job per enabled integration subscribed to the event.
 *
 * One relay at a time holds the batch lock (a transaction-scoped advisory lock) for
 * the length of its enqueue, so any number of api processes can run and events are
 * still queued in commit order; marking them queued in the same transaction means an event whose enqueue failed stays unqueued and is
 * tried again. Should the batch fail between enqueue and COMMIT (Redis refusing a
 * later slice, PostgreSQL going away, the process dying), its next try skips the
 * events whose jobs were added already: each slice of jobs holds whole events, and
 * once added, its events are noted in Redis (see RelayedEvents). The job ids alone
 * would not do: BullMQ forgets finished jobs (it keeps 10 000), after seconds
 * under load. Events are also marked as being added before their first slice is:
 * should the batch stop between a slice's add and its note (a killed process),
 * the next try adds only those of their jobs that are neither in BullMQ nor
 * recorded as delivered.
 *
 * The new jobs of an integration that has jobs waiting for an in-flight slot (a
 * hanging or slow endpoint) are queued parked, in line behind those, so a backlog
 * costs the workers nothing until its slots free (see Parking).
 */
export class EventRelay {
  private readonly batchSize: number;
  private readonly pollMs: number;
  private readonly maxBackoffMs: number;
  private readonly onRelayed: (events: number, jobs: number, parked: number) => void;
  private running: Promise<void> | null = null;
  /** Wake-ups so far, and how many of them the last batch's statement was sure to see. */
  private wakes = 0;
  private coveredWakes = 0;
  private stopped = false;
  private failures = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly listener: PgListener;

  constructor(
    private readonly db: Db,
    private readonly queue: Queue<DeliveryJobData>,
    private readonly parking: Parking,
    private readonly relayed: RelayedEvents,
    databaseUrl: string,
    private readonly log: Logger,
    options: RelayOptions = {},
  ) {
    this.batchSize = options.batchSize ?? 500;
    this.pollMs = options.pollMs ?? 2_000;
    this.maxBackoffMs = options.maxBackoffMs ?? 5_000;
    this.onRelayed = options.onRelayed ?? (() => undefined);
    // After a reconnect, drain: notifications sent while the connection was down are lost.
    this.listener = new PgListener(databaseUrl, 'mozhno_events', { notify: this.wake, up: this.wake }, log, this.maxBackoffMs);
  }

  async start(): Promise<void> {
    await this.listener.start();
    this.wake();
  }

  /**
   * Asks for a drain soon; cheap to call after every commit. A NOTIFY arrives after
   * its COMMIT, so a wake-up received before a batch's statement was sent is seen
   * by that statement: only later ones make the relay look again.
   */
  wake = (): void => {
    if (this.stopped) return;
    this.wakes += 1;
    if (this.running) return;
    this.running = this.drain().finally(() => {
      this.running = null;
      if (this.wakes > this.coveredWakes && this.failures === 0 && !this.stopped) this.wake();
      else this.schedule(this.failures > 0 ? this.backoff() : this.pollMs);
    });
  };

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    await this.listener.stop();
  }

  private async drain(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    try {
      let taken: number | typeof ANOTHER_RELAY;
      do taken = await this.relayBatch();
      while (!this.stopped && taken === this.batchSize);
      // Another api's relay is queueing: neither a success nor a failure of this one.
      if (taken === ANOTHER_RELAY) return;
      if (this.failures > 0) this.log.info('relay recovered: queueing events again');
      this.failures = 0;
    } catch (err) {
      this.failures += 1;
      // One line per outage, not one per attempt.
      if (this.failures === 1) this.log.error({ err: (err as Error).message }, 'relay cannot queue events; retrying');
    }
  }

  /** Relays up to one batch in one transaction; returns how many events it took, or that another relay holds the turn. */
  private async relayBatch(): Promise<number | typeof ANOTHER_RELAY> {
    const relayed = await this.db.transaction(async (trx) => {
      this.coveredWakes = this.wakes;
      // The turn is held to COMMIT: should this api hang or lose its network mid-batch, PostgreSQL
      // ends the transaction after this long without a statement, and other relays take over.
      await trx.raw(`SET LOCAL idle_in_transaction_session_timeout = '${IDLE_IN_BATCH_TIMEOUT_MS}ms'`);
      // One relay at a time, so events are queued in commit order: with SKIP LOCKED alone a second
      // api's relay would add a newer event ahead of the slices of an older batch still being added.
      // The relay that holds the lock is woken by the same NOTIFY and takes the newer events next.
      const { rows: lock } = (await trx.raw('SELECT pg_try_advisory_xact_lock(?) AS locked', [RELAY_LOCK])) as {
        rows: Array<{ locked: boolean }>;
      };
      if (lock[0]?.locked !== true) return ANOTHER_RELAY;
      // Taken and marked in one statement; the mark only counts once the jobs are added and this commits.
      const events = await claimUnqueuedEvents(trx, this.batchSize);
      if (events.length === 0) return 0 as const;
      const integrations = await enabledIntegrationsOf(trx, [...new Set(events.map((e) => e.project_id))]);

      const byProject = groupBy(integrations, (i) => i.project_id);
      // An integration with jobs waiting for a slot gets its new jobs parked behind them at once,
      // rather than each taken by a worker only to find the integration full (a hanging endpoint).
      const congested = await this.parking.congested(integrations.map((i) => i.id));
      const perEvent = events.map((event) => {
        const parked: QueuedParked[] = [];
        const vars = eventVariables(event);
        const eventJobs = (byProject.get(event.project_id) ?? [])
          .filter((i) => i.events.includes(event.action))
          .map((i) => {
            const data: DeliveryJobData = {
              integrationId: i.id,
              integrationVersion: i.version,
              eventId: event.id,
              webhookId: webhookIdFor(event.id, i.id),
              vars,
              committedAt: event.created_at.getTime(),
            };
            const jobId = deliveryJobId(event.id, i.id);
            const waits = congested.has(i.id);
            if (waits) parked.push({ integrationId: i.id, holder: jobId, order: placeInLine(data) });
            // Not { ...JOB_OPTIONS, jobId }: on Node 20 a spread plus a property costs ~0.4 µs, Object.assign ~0.05.
            const opts = waits ? Object.assign({ jobId, delay: this.parking.delayMs }, JOB_OPTIONS) : Object.assign({ jobId }, JOB_OPTIONS);
            return { name: event.action, data, opts };
          });
        return { eventId: event.id, jobs: eventJobs, parked };
      });
      const withJobs = perEvent.filter((e) => e.jobs.length > 0);
      // A batch tried before may have added some events' jobs already: not again.
      const { added, attempted } = await this.relayed.which(withJobs.map((e) => e.eventId));
      const remaining = await this.withoutJobsAddedBefore(
        trx,
        withJobs.filter((e) => !added.has(e.eventId)),
        attempted,
      );
      // Events a stopped try had added after all are noted as such; the others are marked before their add.
      const settled = remaining.filter((e) => e.jobs.length === 0).map((e) => e.eventId);
      if (settled.length > 0) await this.relayed.note(settled);
      const toAdd = remaining.filter((e) => e.jobs.length > 0);
      await this.relayed.attempt(toAdd.map((e) => e.eventId));
      // In slices, so workers start on the first jobs while the rest are still being added; each
      // addBulk is one pipeline (BullMQ 6: not a MULTI, so a slice can be added in part, which the
      // attempted-mark above covers) that keeps Redis busy while it runs, so a small slice keeps the workers'
      // own commands from waiting behind it (100 against 500: first delivery of a burst ~50 ms
      // sooner on the bench, throughput the same; two slices in flight at once measured no better).
      // A slice holds whole events, and its
      // events are noted as added once its parked jobs are in line too (a retry would not park them).
      let jobs = 0;
      let parked = 0;
      for (const slice of wholeEventSlices(toAdd, ADD_BULK_SLICE)) {
        // A statement between slices: it restarts the idle clock above, so only one stuck Redis call
        // can run it out, and it stops the loop should PostgreSQL have ended this transaction.
        await trx.raw('SELECT 1');
        await this.queue.addBulk(slice.jobs);
        // In line only once they are in the delayed set, where a wake-up can find them.
        await this.parking.parkQueued(slice.parked);
        await this.relayed.note(slice.eventIds);
        jobs += slice.jobs.length;
        parked += slice.parked.length;
      }
      return { events: events.length, jobs, parked };
    });
    if (relayed === 0 || relayed === ANOTHER_RELAY) return relayed;
    this.onRelayed(relayed.events, relayed.jobs, relayed.parked);
    return relayed.events;
  }

  /**
   * The events to add, each with the jobs still to add. An event a stopped try was adding
   * (`attempted`) keeps only its jobs that are neither in BullMQ nor recorded as delivered
   * (BullMQ forgets finished jobs; their records stay, the newest DELIVERY_RETENTION of each
   * integration). Its jobs already in BullMQ are not parked again: any that waited for a slot
   * run when their safety delay ends.
   */
  private async withoutJobsAddedBefore(trx: Knex.Transaction, events: PerEvent[], attempted: ReadonlySet<number>): Promise<PerEvent[]> {
    const unsure = events.filter((e) => attempted.has(e.eventId)).flatMap((e) => e.jobs);
    if (unsure.length === 0) return events;
    const queued = await this.relayed.present(unsure.map((job) => this.queue.toKey(job.opts.jobId!)));
    const gone = unsure.filter((_, i) => !queued[i]);
    const recorded = await recordedPairs(trx, gone.map((job) => ({ integrationId: job.data.integrationId, eventId: job.data.eventId! })));
    const missing = new Set(gone.map((job) => job.opts.jobId!).filter((id) => !recorded.has(id)));
    return events.flatMap((e) => {
      if (!attempted.has(e.eventId)) return [e];
      const jobs = e.jobs.filter((job) => missing.has(job.opts.jobId!));
      const parked = e.parked.filter((job) => missing.has(job.holder));
      return [{ eventId: e.eventId, jobs, parked }];
    });
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(this.wake, ms);
    this.timer.unref();
  }

  private backoff(): number {
    return Math.min(250 * 2 ** Math.min(this.failures - 1, 10), this.maxBackoffMs);
  }
}

type RelayJob = { name: string; data: DeliveryJobData; opts: JobsOptions };
type PerEvent = { eventId: number; jobs: RelayJob[]; parked: QueuedParked[] };

type Slice = { jobs: RelayJob[]; parked: QueuedParked[]; eventIds: number[] };

/** Slices of about `size` jobs, never splitting an event's jobs. */
function* wholeEventSlices(perEvent: PerEvent[], size: number): Generator<Slice> {
  let slice: Slice = { jobs: [], parked: [], eventIds: [] };
  for (const { eventId, jobs, parked } of perEvent) {
    for (const job of jobs) slice.jobs.push(job);
    for (const job of parked) slice.parked.push(job);
    slice.eventIds.push(eventId);
    if (slice.jobs.length >= size) {
      yield slice;
      slice = { jobs: [], parked: [], eventIds: [] };
    }
  }
  if (slice.jobs.length > 0) yield slice;
}

// KEYS: the set. ARGV: event ids. Answers per id 1 (added: a positive score), 2 (being added:
// a negative one) or 0.
const NOTED = `
local noted = {}
for i, id in ipairs(ARGV) do
  local score = redis.call('ZSCORE', KEYS[1], id)
  noted[i] = (not score) and 0 or (tonumber(score) > 0 and 1 or 2)
end
return noted`;

/**
 * The events whose jobs the relay has added, as a sorted set in Redis (event id,
 * scored by when), so that a batch tried again adds none of them twice. Ids older
 * than an hour are dropped as new ones are noted: a batch is tried again as soon as
 * Redis and PostgreSQL answer, and an hour is as long as BullMQ keeps a finished
 * job anyway. (About 25 MB at a sustained 100 events a second.)
 *
 * Before its jobs are added, an event is marked as being added (scored by minus the
 * time): a try stopped between an add and its note leaves that mark, and the next
 * try then checks the event's jobs one by one.
 */
export class RelayedEvents {
  private static readonly KEEP_MS = 3600 * 1000;

  constructor(
    private readonly redis: RedisConnection,
    private readonly key: string,
  ) {
    // ZMSCORE would do, but needs Redis 6.2; BullMQ runs on 5.
    if (!('mozhnoNoted' in redis)) redis.defineCommand('mozhnoNoted', { numberOfKeys: 1, lua: NOTED });
  }

  /** Which of these events were added (noted), and which a try was adding when it stopped. */
  async which(eventIds: number[]): Promise<{ added: Set<number>; attempted: Set<number> }> {
    if (eventIds.length === 0) return { added: new Set(), attempted: new Set() };
    const noted = await (this.redis as unknown as { mozhnoNoted(key: string, ...ids: string[]): Promise<number[]> }).mozhnoNoted(this.key, ...eventIds.map(String));
    return { added: new Set(eventIds.filter((_, i) => noted[i] === 1)), attempted: new Set(eventIds.filter((_, i) => noted[i] === 2)) };
  }

  /** Whether each of these keys (BullMQ's job hashes) exists, in the same order. */
  async present(keys: string[]): Promise<boolean[]> {
    if (keys.length === 0) return [];
    const replies = (await this.redis.pipeline(keys.map((key) => ['exists', key])).exec()) ?? [];
    return replies.map(([err, exists]) => {
      if (err) throw err;
      return exists === 1;
    });
  }

  /** Marks events as being added, before any of their jobs is. */
  async attempt(eventIds: number[]): Promise<void> {
    if (eventIds.length === 0) return;
    await this.redis.zadd(this.key, ...eventIds.flatMap((id) => [-Date.now(), String(id)]));
  }

  async note(eventIds: number[]): Promise<void> {
    const now = Date.now();
    const expired = now - RelayedEvents.KEEP_MS;
    await this.redis
      .multi()
      .zadd(this.key, ...eventIds.flatMap((id) => [now, String(id)]))
      // Noted ids (scored by when) and marks (by minus when) older than KEEP_MS.
      .zremrangebyscore(this.key, -expired, expired)
      .exec();
  }
}
