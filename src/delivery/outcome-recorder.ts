import { intArrayLiteral, withConnection, type Db } from '../db/knex.js';
import { isConnectionError, pgErrorCode } from '../db/errors.js';
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

export interface RecorderOptions {
  retention: number;
  maxBatch?: number;
  /** How long a batch is tried again while PostgreSQL cannot be reached, before its outcomes are given up. */
  patienceMs?: number;
  /** How often rows beyond the retention are deleted, for the integrations written since. */
  pruneEveryMs?: number;
}

// 40P01 deadlock_detected, 40001 serialization_failure: the batch is safe to write again.
const RETRYABLE = new Set(['40P01', '40001']);
/** pg_advisory_xact_lock key that serializes retention passes across workers ('mzret' in ASCII). */
const RETENTION_LOCK = 0x6d7a726574;

/** The deliveries columns a batch fills, in the order of a row's array (see `toRow`). */
const COLUMN_TYPES = [
  ['integration_id', 'int'],
  ['event_id', 'bigint'],
  ['webhook_id', 'text'],
  ['action', 'text'],
  ['status', 'text'],
  ['error_code', 'text'],
  ['http_status', 'int'],
  ['address', 'text'],
  ['duration_ms', 'int'],
  ['error', 'text'],
  ['request_body', 'text'],
  ['response_excerpt', 'text'],
  ['created_at', 'timestamptz'],
] as const;
const COLUMNS = COLUMN_TYPES.map(([name]) => name).join(', ');

/**
 * One batch in one statement, so one round trip and its own transaction. The batch is
 * one JSON binding (an array of row arrays, so no key is repeated per row; knex would
 * spread an array binding into a list). The statement locks the batch's integrations
 * in id order, once each (KEY SHARE: concurrent batches never wait for each other, and
 * an integration cannot be deleted until this commits, when the delete trigger takes
 * its records with it), leaves out the outcomes of integrations deleted meanwhile, and
 * sets lastError from the newest failure per integration (unless another worker already
 * saved a newer one: batches of two workers can commit out of order). Named, so PostgreSQL parses
 * and plans it once per connection.
 *
 * There is no foreign key on deliveries: its check ran once per row, and made a batch
 * of 50 successes ~40 % dearer for PostgreSQL (migration 007).
 */
const RECORD_OUTCOMES = {
  name: 'mozhno_record_outcomes',
  text: `WITH input AS MATERIALIZED (
           SELECT ${COLUMN_TYPES.map(([name, type], i) => `(r->>${i})::${type} AS ${name}`).join(', ')}
             FROM jsonb_array_elements($1::jsonb) AS r
         ),
         alive AS MATERIALIZED (
           SELECT id FROM integrations WHERE id IN (SELECT integration_id FROM input) ORDER BY id FOR KEY SHARE
         ),
         failed AS MATERIALIZED (
           SELECT DISTINCT ON (integration_id) integration_id, error, created_at
             FROM input WHERE status = 'failure' AND integration_id IN (SELECT id FROM alive)
            ORDER BY integration_id, created_at DESC
         ),
         noted AS (
           UPDATE integrations AS i SET last_error = f.error, last_error_at = f.created_at
             FROM failed AS f
            WHERE i.id = f.integration_id AND (i.last_error_at IS NULL OR i.last_error_at <= f.created_at)
         )
         INSERT INTO deliveries (${COLUMNS})
         SELECT ${COLUMNS} FROM input WHERE integration_id IN (SELECT id FROM alive)`,
};

/**
 * Saves delivery outcomes in batches: whatever finished while the previous
 * write was under way goes in the next one (group commit), so a busy worker
 * writes one statement per batch instead of several per delivery, and an idle
 * one writes at once. `record` resolves when its outcome is stored.
 *
 * An integration's last delivery (time and status) is read from its newest
 * deliveries row, so a success writes nothing else; only a failure also sets
 * the integration's lastError (see RECORD_OUTCOMES). Rows beyond
 * DELIVERY_RETENTION are deleted a moment later, in the background, for the
 * integrations written since.
 */
export class OutcomeRecorder {
  private pending: Pending[] = [];
  private writing: Promise<void> | null = null;
  private readonly touched = new Set<number>();
  private readonly pruneTimer: NodeJS.Timeout;
  private pruning: Promise<void> = Promise.resolve();
  private pruneRunning = false;
  private readonly retention: number;
  private readonly maxBatch: number;
  private readonly patienceMs: number;
  /** Set by `hurry`: batches stop waiting for PostgreSQL by then. */
  private giveUpBy = Infinity;
  private waitingForDatabase = false;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    options: RecorderOptions,
  ) {
    this.retention = options.retention;
    this.maxBatch = options.maxBatch ?? 500;
    this.patienceMs = options.patienceMs ?? 60_000;
    this.pruneTimer = setInterval(() => void this.prune(), options.pruneEveryMs ?? 1_000);
    this.pruneTimer.unref();
  }

  record(outcome: DeliveryOutcome): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ outcome, resolve, reject });
      if (!this.writing) this.writing = this.writeAll();
    });
  }

  /** On shutdown: a batch waiting for PostgreSQL waits at most `ms` more. */
  hurry(ms: number): void {
    this.giveUpBy = Date.now() + ms;
  }

  /** Stores everything recorded so far and applies the retention (used on shutdown). */
  async close(): Promise<void> {
    clearInterval(this.pruneTimer);
    while (this.writing) await this.writing;
    await this.pruning;
    await this.prune();
  }

  private async writeAll(): Promise<void> {
    // Let outcomes finishing in this same turn of the event loop join the first batch.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, this.maxBatch);
      try {
        await this.writeWithRetry(batch.map((p) => p.outcome));
        for (const p of batch) p.resolve();
      } catch (err) {
        this.log.error({ err }, `could not save ${batch.length} delivery outcome(s)`);
        for (const p of batch) p.reject(err);
      }
    }
    this.writing = null;
  }

  /**
   * A deadlock or serialization failure is tried again at once (three times in all).
   * While PostgreSQL cannot be reached (a restart, a failover) the batch is tried
   * again with a growing pause for up to `patienceMs`: its requests were sent, and
   * sending them again is no way to get their outcomes back. The jobs wait meanwhile,
   * so the worker takes no new ones.
   */
  private async writeWithRetry(outcomes: DeliveryOutcome[]): Promise<void> {
    const batch = JSON.stringify(outcomes.map(toRow));
    // Counted from the first failure, not from the first try: a try that hung until its connection broke
    // (a PostgreSQL that stopped answering) must not have used up the patience by itself.
    let giveUpBy = Infinity;
    for (let attempt = 1, pause = 100; ; attempt++) {
      try {
        await this.write(batch);
        for (const o of outcomes) this.touched.add(o.integrationId);
        if (this.waitingForDatabase) this.log.info('PostgreSQL is back; delivery outcomes are saved again');
        this.waitingForDatabase = false;
        return;
      } catch (err) {
        if (RETRYABLE.has(pgErrorCode(err) ?? '') && attempt < 3) continue;
        if (isConnectionError(err) && giveUpBy === Infinity) giveUpBy = Date.now() + this.patienceMs;
        if (!isConnectionError(err) || Date.now() + pause > Math.min(giveUpBy, this.giveUpBy)) throw err;
        if (!this.waitingForDatabase) this.log.warn({ err: (err as Error).message }, 'PostgreSQL unreachable; delivery outcomes wait for it');
        this.waitingForDatabase = true;
        await new Promise((resolve) => setTimeout(resolve, pause));
        pause = Math.min(pause * 2, 2_000);
      }
    }
  }

  /** RECORD_OUTCOMES straight on a pooled connection: knex cannot name a statement. */
  private async write(batch: string): Promise<void> {
    await withConnection(this.db, (connection) => connection.query({ name: RECORD_OUTCOMES.name, text: RECORD_OUTCOMES.text, values: [batch] }));
  }

  /**
   * Keeps the newest `retention` rows of each integration written since the last pass. A pass
   * still running (waiting for another worker's) is not queued behind: the next tick after it
   * takes everything written meanwhile.
   */
  private prune(): Promise<void> {
    if (this.pruneRunning) return this.pruning;
    this.pruneRunning = true;
    this.pruning = this.prunePass().finally(() => {
      this.pruneRunning = false;
    });
    return this.pruning;
  }

  private async prunePass(): Promise<void> {
    if (this.touched.size === 0) return;
    const ids = [...this.touched].sort((a, b) => a - b);
    this.touched.clear();
    try {
      // One worker prunes at a time: two DELETEs over the same integrations' rows, taken in
      // different orders, deadlock. The lock is held to the end of this statement's transaction.
      await this.db.transaction(async (trx) => {
        await trx.raw('SELECT pg_advisory_xact_lock(?)', [RETENTION_LOCK]);
        // Planned afresh every pass: past ~700 integrations the estimate crosses jit_above_cost, and
        // compiling (~11 ms) cost more than it saved (39 ms a pass against 28 at 2000 integrations).
        await trx.raw('SET LOCAL jit = off');
        // An integration being deleted (locked FOR UPDATE) is left out: its delete removes its records
        // itself, and the two deleting the same rows in different orders deadlock. Should the delete
        // roll back instead, it is pruned after its next record.
        const { rows } = (await trx.raw(
          'SELECT id FROM integrations WHERE id = ANY(?::int[]) ORDER BY id FOR KEY SHARE SKIP LOCKED',
          [intArrayLiteral(ids)],
        )) as { rows: Array<{ id: number }> };
        const prunable = rows.map((row) => row.id);
        if (prunable.length > 0) await trx.raw(PRUNE_RETENTION, pruneBindings(prunable, this.retention));
      });
    } catch (err) {
      for (const id of ids) this.touched.add(id); // try again next pass
      this.log.warn({ err: (err as Error).message }, 'could not apply the delivery retention; retrying');
    }
  }
}

/**
 * Deletes all but the newest `retention` rows of each integration given. unnest of an int[] is
 * estimated at its real length; jsonb_array_elements, used before, was always 100 rows, and from
 * ~100k deliveries the planner then chose a scan of the whole table to delete a few rows.
 */
export const PRUNE_RETENTION = `DELETE FROM deliveries AS d
  USING (SELECT i.id AS integration_id, cutoff.created_at, cutoff.id
           FROM unnest(?::int[]) AS i(id)
           CROSS JOIN LATERAL (SELECT created_at, id FROM deliveries WHERE integration_id = i.id
                                ORDER BY created_at DESC, id DESC OFFSET ? LIMIT 1) AS cutoff) AS k
  WHERE d.integration_id = k.integration_id AND (d.created_at, d.id) <= (k.created_at, k.id)`;

export function pruneBindings(integrationIds: readonly number[], retention: number): [string, number] {
  return [intArrayLiteral(integrationIds), retention];
}

/** One row as an array, in COLUMN_TYPES order. */
function toRow(o: DeliveryOutcome): unknown[] {
  return [
    o.integrationId,
    o.eventId,
    o.webhookId,
    o.action,
    o.result.ok ? 'success' : 'failure',
    o.result.errorCode,
    o.result.httpStatus,
    o.result.address,
    Math.round(o.result.durationMs),
    o.result.error,
    o.requestBody === null ? null : truncateUtf8(o.requestBody, MAX_REQUEST_BODY_BYTES),
    o.result.responseExcerpt,
    o.at,
  ];
}

/** At most `maxBytes` of UTF-8, never splitting a character. */
export function truncateUtf8(text: string, maxBytes: number): string {
  // A UTF-16 code unit is at most 3 UTF-8 bytes: most bodies need no counting.
  if (text.length * 3 <= maxBytes || Buffer.byteLength(text) <= maxBytes) return text;
  const cut = Buffer.from(text).subarray(0, maxBytes).toString('utf8');
  // A split character decodes to U+FFFD at the end: drop it.
  return cut.endsWith('\uFFFD') ? cut.slice(0, -1) : cut;
}
