import type { Db, PgConnection } from '../db/knex.js';
import { PeriodicPass } from '../db/periodic-pass.js';
import type { Logger } from '../logger.js';

/** pg_advisory_lock key that keeps two workers from pruning events at once ('mzevr' in ASCII). */
export const EVENT_RETENTION_LOCK = 0x6d7a657672;

export interface EventRetentionOptions {
  /** EVENT_RETENTION_DAYS: queued events older than this are deleted. */
  days: number;
  everyMs?: number;
  /** Rows looked at per statement; a pass runs at most `maxBatches` of them. */
  batch?: number;
  maxBatches?: number;
}

/**
 * Deletes the oldest of the oldest `batch` events, when queued and older than the retention.
 * Only that window is looked at, so a pass costs the same on a table of any size and whether
 * or not anything is due (a filter over the whole index would read every row when nothing is).
 * Ids follow commit time closely enough: an event past the window waits for the next pass.
 */
const DELETE_BATCH = `
  DELETE FROM events WHERE id IN (
    SELECT id FROM (SELECT id, created_at, queued_at FROM events ORDER BY id LIMIT $2) AS oldest
     WHERE queued_at IS NOT NULL AND created_at < now() - make_interval(days => $1))`;

/**
 * EVENT_RETENTION_DAYS: the workers keep the events table to that many days, once a minute,
 * one worker at a time. An event the relay has not queued yet is never deleted.
 */
export class EventRetention extends PeriodicPass<number> {
  private readonly batch: number;
  private readonly maxBatches: number;

  constructor(
    db: Db,
    private readonly log: Logger,
    private readonly options: EventRetentionOptions,
  ) {
    super(db, options.everyMs ?? 60_000, 0);
    this.batch = options.batch ?? 5_000;
    this.maxBatches = options.maxBatches ?? 20;
  }

  /** One pass answers how many events it deleted (0 when another worker holds the lock). */
  protected override async pass(connection: PgConnection): Promise<number> {
    try {
      const deleted = await this.underLock(connection, EVENT_RETENTION_LOCK, async () => {
        let count = 0;
        for (let i = 0; i < this.maxBatches && !this.stopping; i++) {
          const { rowCount } = await connection.query(DELETE_BATCH, [this.options.days, this.batch]);
          count += rowCount ?? 0;
          if (!rowCount) break;
        }
        return count;
      });
      if (deleted > 0) this.log.info({ deleted, days: this.options.days }, 'events past their retention deleted');
      return deleted;
    } catch (err) {
      if (!this.stopping) this.log.warn({ err: (err as Error).message }, 'could not apply the event retention; trying again in a minute');
      return 0;
    }
  }
}
