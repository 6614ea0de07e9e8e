import type { Db } from '../db/knex.js';
import { deliveryTargets } from '../integrations/store.js';
import { PgListener } from '../db/listener.js';
import type { Logger } from '../logger.js';

/** What the worker needs of an integration to deliver to it. */
export interface DeliveryTarget {
  id: number;
  version: number;
  enabled: boolean;
  url: string;
  headers: Record<string, string>;
  bodyTemplate: string | null;
  secret: string | null;
  /** A rotation's replaced secret while it still signs beside `secret` (null once it expired). */
  previousSecret: string | null;
  events: string[];
}

interface Waiter {
  resolve(target: DeliveryTarget | undefined): void;
  reject(err: unknown): void;
}

export interface LoaderOptions {
  /** Longest a cached integration is used without reading it again, should a notification be lost. */
  ttlMs?: number;
  maxEntries?: number;
}

/**
 * Gives the worker the state of an integration for every job. Reads are cached;
 * two things keep the cache honest:
 *
 * - every job carries the integration's version as the relay saw it after the
 *   event committed, and a cached copy older than that is read again — so a
 *   change committed before the event is always seen;
 * - a change committed after the job was queued (a delete, a disable) evicts the
 *   copy from every worker on COMMIT (a trigger NOTIFYs `mozhno_integrations`),
 *   so it applies within the time a notification takes. While that LISTEN
 *   connection is down nothing is cached, and entries expire after `ttlMs` anyway.
 *
 * Reads of jobs that start in the same tick share one query.
 */
export class IntegrationLoader {
  private batch: Map<number, Waiter[]> | null = null;
  private readonly cache = new Map<number, { target: DeliveryTarget | undefined; expires: number }>();
  /** Bumped by every eviction: a read that overlapped one is not cached. */
  private evictions = 0;
  private readonly listener: PgListener;
  private readonly ttlMs: number;
  private readonly maxEntries: number;

  constructor(
    private readonly db: Db,
    databaseUrl: string,
    log: Logger,
    options: LoaderOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 5_000;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.listener = new PgListener(
      databaseUrl,
      'mozhno_integrations',
      {
        notify: (payload) => this.evict(Number(payload)),
        down: () => this.evictAll(),
        // A read that started while nobody listened may predate a change whose NOTIFY was lost:
        // counting an eviction when LISTEN is back keeps it out of the cache.
        up: () => this.evictAll(),
      },
      log,
    );
  }

  start(): Promise<void> {
    return this.listener.start();
  }

  stop(): Promise<void> {
    return this.listener.stop();
  }

  /** The integration at `minVersion` or newer; undefined once it is deleted. */
  async load(id: number, minVersion: number): Promise<DeliveryTarget | undefined> {
    const cached = this.cache.get(id);
    if (cached && cached.expires > Date.now() && (cached.target === undefined || cached.target.version >= minVersion)) return cached.target;
    const evictionsBefore = this.evictions;
    const target = await this.read(id);
    if (this.listener.listening && this.evictions === evictionsBefore) {
      if (this.cache.size >= this.maxEntries) this.cache.clear();
      this.cache.set(id, { target, expires: Date.now() + this.ttlMs });
    }
    return target;
  }

  private evict(id: number): void {
    this.evictions += 1;
    this.cache.delete(id);
  }

  private evictAll(): void {
    this.evictions += 1;
    this.cache.clear();
  }

  private read(id: number): Promise<DeliveryTarget | undefined> {
    return new Promise((resolve, reject) => {
      if (!this.batch) {
        const batch = new Map<number, Waiter[]>();
        this.batch = batch;
        queueMicrotask(() => {
          this.batch = null;
          void this.fetch(batch);
        });
      }
      const waiters = this.batch.get(id) ?? [];
      waiters.push({ resolve, reject });
      this.batch.set(id, waiters);
    });
  }

  private async fetch(batch: Map<number, Waiter[]>): Promise<void> {
    try {
      const rows = await deliveryTargets(this.db, [...batch.keys()]);
      const byId = new Map(rows.map((row) => [row.id, row]));
      for (const [id, waiters] of batch) for (const waiter of waiters) waiter.resolve(byId.get(id));
    } catch (err) {
      for (const waiters of batch.values()) for (const waiter of waiters) waiter.reject(err);
    }
  }
}
