import type { Db } from '../db/knex.js';
import type { Logger } from '../logger.js';
import type { DeliveryResult } from './http-client.js';

export const MAX_REQUEST_BODY_BYTES = 8 * 1024;

export interface DeliveryOutcome {
  integrationId: number;
  eventId: number | null;
  webhookId: string;
  action: string;
  requestBody: string | null;
  result: DeliveryResult;
  at: Date;
}

interface Pending {
  outcome: DeliveryOutcome;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Saves delivery outcomes in batches: whatever finished while the previous
 * write was under way goes in the next one (group commit), so a busy worker
 * makes three statements per batch instead of three per delivery, and an idle
 * one writes at once. `record` resolves when its outcome is stored.
 */
export class OutcomeRecorder {
  private pending: Pending[] = [];
  private writing: Promise<void> | null = null;

  constructor(
    private readonly db: Db,
    private readonly retention: number,
    private readonly log: Logger,
    private readonly maxBatch = 500,
  ) {}

  record(outcome: DeliveryOutcome): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ outcome, resolve, reject });
      if (!this.writing) this.writing = this.writeAll();
    });
  }

  /** Resolves once everything recorded so far is stored (used on shutdown). */
  async flush(): Promise<void> {
    while (this.writing) await this.writing;
  }

  private async writeAll(): Promise<void> {
    // Let outcomes finishing in this same turn of the event loop join the first batch.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, this.maxBatch);
      try {
        await this.write(batch.map((p) => p.outcome));
        for (const p of batch) p.resolve();
      } catch (err) {
        this.log.error({ err }, `could not save ${batch.length} delivery outcome(s)`);
        for (const p of batch) p.reject(err);
      }
    }
    this.writing = null;
  }

  private async write(all: DeliveryOutcome[]): Promise<void> {
    await this.db.transaction(async (trx) => {
      // An integration deleted while its delivery was in flight takes its log with it; KEY SHARE holds off
      // such a delete until this commits.
      const alive = (await trx('integrations')
        .whereIn('id', [...new Set(all.map((o) => o.integrationId))])
        .forKeyShare()
        .pluck('id')) as number[];
      const outcomes = all.filter((o) => alive.includes(o.integrationId));
      if (outcomes.length === 0) return;
      await trx('deliveries').insert(outcomes.map(toRow));

      // Per integration: the newest attempt sets last delivery; the newest failure sets last error.
      const latest = new Map<number, { at: Date; status: string; error: string | null; errorAt: Date | null }>();
      for (const o of outcomes) {
        const previous = latest.get(o.integrationId);
        const failed = !o.result.ok;
        latest.set(o.integrationId, {
          at: o.at,
          status: o.result.ok ? 'success' : 'failure',
          error: failed ? o.result.error : (previous?.error ?? null),
          errorAt: failed ? o.at : (previous?.errorAt ?? null),
        });
      }
      // knex would spread array bindings into lists, so the batch goes in as one JSON value.
      const updates = [...latest].map(([id, r]) => ({ id, at: r.at, status: r.status, error: r.error, error_at: r.errorAt }));
      await trx.raw(
        `UPDATE integrations AS i
            SET last_delivery_at = v.at,
                last_delivery_status = v.status,
                last_error = COALESCE(v.error, i.last_error),
                last_error_at = COALESCE(v.error_at, i.last_error_at)
           FROM jsonb_to_recordset(?::jsonb) AS v(id int, at timestamptz, status text, error text, error_at timestamptz)
          WHERE i.id = v.id`,
        [JSON.stringify(updates)],
      );

      // Keep the newest `retention` rows of each integration: delete at and below the first one past them.
      await trx.raw(
        `DELETE FROM deliveries AS d
          USING (SELECT i.id AS integration_id, cutoff.id AS cutoff_id
                   FROM jsonb_array_elements_text(?::jsonb) AS i(id)
                   CROSS JOIN LATERAL (SELECT id FROM deliveries WHERE integration_id = i.id::int
                                        ORDER BY id DESC OFFSET ? LIMIT 1) AS cutoff) AS k
          WHERE d.integration_id = k.integration_id::int AND d.id <= k.cutoff_id`,
        [JSON.stringify([...latest.keys()]), this.retention],
      );
    });
  }
}

function toRow(o: DeliveryOutcome) {
  return {
    integration_id: o.integrationId,
    event_id: o.eventId,
    webhook_id: o.webhookId,
    action: o.action,
    status: o.result.ok ? 'success' : 'failure',
    error_code: o.result.errorCode,
    http_status: o.result.httpStatus,
    address: o.result.address,
    duration_ms: Math.round(o.result.durationMs),
    error: o.result.error,
    request_body: o.requestBody === null ? null : truncateUtf8(o.requestBody, MAX_REQUEST_BODY_BYTES),
    response_excerpt: o.result.responseExcerpt,
    created_at: o.at,
  };
}

/** At most `maxBytes` of UTF-8, never splitting a character. */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  const cut = Buffer.from(text).subarray(0, maxBytes).toString('utf8');
  // A split character decodes to U+FFFD at the end: drop it.
  return cut.endsWith('\uFFFD') ? cut.slice(0, -1) : cut;
}
