import type { Db } from '../db/knex.js';

/** What the worker needs of an integration to deliver to it. */
export interface DeliveryTarget {
  id: number;
  enabled: boolean;
  url: string;
  headers: Record<string, string>;
  bodyTemplate: string | null;
  secret: string | null;
  events: string[];
}

interface Waiter {
  resolve(target: DeliveryTarget | undefined): void;
  reject(err: unknown): void;
}

/**
 * Reads integrations fresh for every job — a delivery must see a delete or
 * disable that happened after it was queued — but batches the reads of jobs that
 * start in the same tick into one query.
 */
export class IntegrationLoader {
  private batch: Map<number, Waiter[]> | null = null;

  constructor(private readonly db: Db) {}

  load(id: number): Promise<DeliveryTarget | undefined> {
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
      const rows = (await this.db('integrations')
        .whereIn('id', [...batch.keys()])
        .select('id', 'enabled', 'url', 'headers', 'body_template as bodyTemplate', 'secret', 'events')) as DeliveryTarget[];
      const byId = new Map(rows.map((row) => [row.id, row]));
      for (const [id, waiters] of batch) for (const waiter of waiters) waiter.resolve(byId.get(id));
    } catch (err) {
      for (const waiters of batch.values()) for (const waiter of waiters) waiter.reject(err);
    }
  }
}
