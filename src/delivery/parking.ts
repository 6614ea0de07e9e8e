import { Job, type Queue } from 'bullmq';
import type { Logger } from '../logger.js';
import { InFlightLimit, type QueuedParked } from './in-flight-limit.js';
import type { DeliveryJobData, RedisConnection } from './queue.js';

export interface ParkingSettings {
  queuePrefix: string;
  webhookMaxInFlight: number;
  webhookMaxBacklog: number;
  webhookTimeoutMs: number;
}

/**
 * How long a worker keeps a finished delivery's slot for the next delivery of the same
 * integration (see `InFlightLimit`): a burst's deliveries to one endpoint then take their slots
 * without a Redis call, and a slot nobody takes is released at most this late.
 */
export const KEEP_SLOT_MS = 100;

/**
 * The per-integration in-flight cap and the jobs waiting for it, for both sides of
 * the queue: workers take slots, park the jobs that find none and wake them as
 * slots free; the relay queues the new jobs of an integration that already has jobs
 * waiting as parked ones, in line behind those.
 *
 * A parked job sits in BullMQ's delayed set, holding no worker slot, until a
 * release wakes it (promotes it); its delay is only a safety net should that
 * wake-up be lost.
 */
export class Parking {
  readonly limit: InFlightLimit;
  /** How long a parked job waits for a wake-up before it runs anyway (the safety net). */
  readonly delayMs: number;
  /** Jobs one integration's line holds at most (WEBHOOK_MAX_BACKLOG). */
  readonly maxBacklog: number;
  private readonly wakes = new Set<Promise<void>>();

  constructor(
    connection: RedisConnection,
    private readonly queue: Queue<DeliveryJobData>,
    settings: ParkingSettings,
    private readonly log: Logger,
  ) {
    // A slot is held at most for a whole attempt plus saving it; a crashed holder's slot frees itself after that.
    const leaseMs = settings.webhookTimeoutMs + 15_000;
    this.delayMs = leaseMs + 5_000;
    this.maxBacklog = settings.webhookMaxBacklog;
    this.limit = new InFlightLimit(connection, `${settings.queuePrefix}:limit`, settings.webhookMaxInFlight, leaseMs, this.wake, { keepMs: KEEP_SLOT_MS });
  }

  /**
   * Parks a job the worker holds (it found its integration full); the caller then throws DelayedError.
   * Its safety delay doubles each time the job is taken and parked again, up to 16 × `delayMs`: a
   * job whose delay ran out while its line still waits (an endpoint hanging for hours) is in line
   * anyway, and a long line is then taken up in full every few minutes at most, not every `delayMs`.
   */
  async park(job: Job<DeliveryJobData>, token: string | undefined): Promise<{ overBacklog: number } | null> {
    // A line already WEBHOOK_MAX_BACKLOG long ahead of it: the job fails unsent instead (see worker.ts).
    const ahead = await this.limit.overBacklog(job.data.integrationId, job.id!, placeInLine(job.data), this.maxBacklog);
    if (ahead !== null) return { overBacklog: ahead };
    // Counted in the job's data, not by BullMQ's attemptsStarted, which also counts deferrals.
    const parks = job.data.parks ?? 0;
    await job.updateData({ ...job.data, parks: parks + 1 });
    await job.moveToDelayed(Date.now() + this.delayMs * 2 ** Math.min(parks, 4), token);
    if ((await this.limit.park(job.data.integrationId, job.id!, placeInLine(job.data))) === 'retry') await job.promote();
    return null;
  }

  /**
   * Of these integrations, those whose new jobs the relay should queue parked: jobs wait for a
   * slot, fewer than WEBHOOK_MAX_BACKLOG. A full line's new jobs are queued to be taken at once,
   * so that a worker fails them unsent now rather than they wait in Redis for their safety delay.
   */
  async congested(integrationIds: number[]): Promise<Set<number>> {
    const lengths = await this.limit.lineLengths(integrationIds);
    return new Set(integrationIds.filter((_, i) => lengths[i]! > 0 && lengths[i]! < this.maxBacklog));
  }

  /** Puts jobs the relay added to the delayed set (with `delayMs`) in line; wakes what free slots allow. */
  parkQueued(jobs: QueuedParked[]): Promise<void> {
    return this.limit.parkQueued(jobs);
  }

  /** Sends outstanding releases and waits for the wake-ups under way (on shutdown). */
  async close(): Promise<void> {
    await this.limit.flush();
    while (this.wakes.size > 0) await Promise.all(this.wakes);
    await this.limit.flush();
  }

  /** A job was taken out of line for a free slot: promote it, or wake the next one if it is gone. */
  private readonly wake = (integrationId: number, jobId: string): void => {
    const wake = this.promote(integrationId, jobId).catch((err: unknown) =>
      this.log.warn({ err: (err as Error).message, jobId }, 'could not wake a parked job; its safety delay will'),
    );
    this.wakes.add(wake);
    void wake.finally(() => this.wakes.delete(wake));
  };

  private async promote(integrationId: number, jobId: string): Promise<void> {
    const job = await Job.fromId(this.queue, jobId);
    const state = job ? await job.getState() : 'unknown';
    if (state === 'delayed') {
      await job!.promote().catch(() => undefined); // promoted by its safety delay in between: it runs anyway
    } else if (state === 'completed' || state === 'failed' || state === 'unknown') {
      await this.limit.wakeNext(integrationId);
    }
    // waiting or active: it is on its way already.
  }
}

/** A job's place in line: its event's id (events are queued in id order); a test send goes first. */
export function placeInLine(data: Pick<DeliveryJobData, 'eventId'>): number {
  return data.eventId ?? 0;
}

/**
 * Whether a job may still be listed in its integration's line: a worker parked it (`parks`) or
 * the relay queued it parked (with a delay in its options: BullMQ sets the job's own `delay` back
 * to 0 when it is promoted or its delay runs out, but leaves its options alone).
 */
export function wasParked(job: Job<DeliveryJobData>): boolean {
  return (job.data.parks ?? 0) > 0 || (job.opts.delay ?? 0) > 0;
}
