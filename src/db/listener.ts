import pg from 'pg';
import type { Logger } from '../logger.js';
import { pgConnection } from './knex.js';

export interface ListenerHandlers {
  notify(payload: string): void;
  /** LISTEN is (again) in force: notifications sent while it was not may have been missed. */
  up?(): void;
  /** The connection was lost; notifications are missed until `up`. */
  down?(): void;
}

/**
 * LISTEN on a connection of its own, reconnecting after a drop. NOTIFY is
 * delivered on COMMIT, so a listener hears of committed changes only.
 */
export class PgListener {
  private client: pg.Client | null = null;
  private stopped = false;
  private retry: NodeJS.Timeout | null = null;
  /** Failed attempts since LISTEN was last in force: the first is a warning, the rest go to debug. */
  private failures = 0;

  constructor(
    private readonly databaseUrl: string,
    private readonly channel: string,
    private readonly handlers: ListenerHandlers,
    private readonly log: Logger,
    private readonly retryMs = 1_000,
  ) {}

  get listening(): boolean {
    return this.client !== null;
  }

  /** Resolves once the first attempt is over; a failed one keeps retrying in the background. */
  async start(): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client(pgConnection(this.databaseUrl));
    client.on('notification', (message) => this.handlers.notify(message.payload ?? ''));
    client.on('error', () => this.lost(client));
    client.on('end', () => this.lost(client));
    try {
      await client.connect();
      await client.query(`LISTEN ${pg.escapeIdentifier(this.channel)}`);
      this.client = client;
      if (this.failures > 0) this.log.info({ channel: this.channel, attempts: this.failures + 1 }, 'LISTEN in force again');
      this.failures = 0;
      this.handlers.up?.();
    } catch (err) {
      // One warning an outage, not one a second: the retries go on quietly until one gets through.
      const level = this.failures++ === 0 ? 'warn' : 'debug';
      this.log[level]({ err: (err as Error).message, channel: this.channel }, `cannot LISTEN; retrying every ${this.retryMs / 1000} s`);
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
      this.scheduleRetry();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    const client = this.client;
    this.client = null;
    client?.removeAllListeners('end');
    await client?.end().catch(() => undefined);
  }

  private lost(client: pg.Client): void {
    if (this.client !== client) return;
    this.client = null;
    this.handlers.down?.();
    client.end().catch(() => undefined);
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.stopped) return;
    this.retry = setTimeout(() => void this.start(), this.retryMs);
    this.retry.unref();
  }
}
