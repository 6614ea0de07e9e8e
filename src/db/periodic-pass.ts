import { withConnection, type Db, type PgConnection } from './knex.js';

/**
 * Upkeep a worker runs every `everyMs` on a pooled connection (vacuum, retention): one pass at a
 * time (a tick that finds one under way, a VACUUM taking minutes, is skipped rather than queued),
 * a pass that fails or cannot get a connection answering `idle` (the next one tries again), and
 * `stop()` waiting for the pass under way after `interrupt()` had its chance to cut it short.
 */
export abstract class PeriodicPass<T> {
  protected stopping = false;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<T>;
  /** Passes asked for and not finished: a tick while one is under way is skipped, not queued behind it. */
  private pending = 0;

  constructor(
    protected readonly db: Db,
    private readonly everyMs: number,
    private readonly idle: T,
  ) {
    this.running = Promise.resolve(idle);
  }

  start(): void {
    this.timer ??= setInterval(() => {
      if (this.pending === 0) void this.runOnce();
    }, this.everyMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.interrupt();
    await this.running;
  }

  /** One pass, after the one under way. Never throws. */
  runOnce(): Promise<T> {
    this.pending++;
    this.running = this.running
      .then(() => (this.stopping ? this.idle : withConnection(this.db, (connection) => this.pass(connection))))
      .catch(() => this.idle)
      .finally(() => this.pending--);
    return this.running;
  }

  /** Answers what it did; `idle` when it did nothing (callers must not change what it answers). */
  protected abstract pass(connection: PgConnection): Promise<T>;

  /**
   * `work` under the session advisory lock `key`, so that one worker at a time does it; `idle` at
   * once when another holds it. The lock is given back however `work` ends.
   */
  protected async underLock(connection: PgConnection, key: number, work: () => Promise<T>): Promise<T> {
    const { rows } = await connection.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [key]);
    if (!rows[0]!.locked) return this.idle;
    try {
      return await work();
    } finally {
      await connection.query('SELECT pg_advisory_unlock($1)', [key]);
    }
  }

  /** Called by `stop()` before it waits for the pass under way. */
  protected async interrupt(): Promise<void> {}
}
