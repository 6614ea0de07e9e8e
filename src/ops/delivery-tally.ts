import { randomUUID } from 'node:crypto';
import type { RedisConnection } from '../delivery/queue.js';
import type { Logger } from '../logger.js';
import { DELIVERY_METRICS, DURATION_BUCKETS } from './metrics.js';

/**
 * The fleet's delivery counts for the api's /metrics (SPEC §7), in one Redis hash
 * that every worker process adds to. Its fields:
 *
 * - `total|<result>|<code>`: attempts by result and error code;
 * - `bucket|<result>|<le>`: attempts whose duration fell in that histogram bucket
 *   (not cumulative: the reader adds them up);
 * - `sum|<result>`: their durations, in seconds.
 */
export function deliveryTallyKey(queuePrefix: string): string {
  return `${queuePrefix}:metrics:deliveries`;
}

const FLUSH_EVERY_MS = 1_000;
const CLOSE_FLUSH_TIMEOUT_MS = 2_000;
/** How long Redis remembers a worker's last flush (refreshed by each): far longer than any resend. */
const FLUSHED_MARK_SECONDS = 86_400;

/**
 * Adds one flush to the hash unless this worker's flush of that number was added already
 * (a resend after a connection reset whose reply was lost). Each field on its own: one
 * Redis refuses (not a number) is reported back by its place, the others are added.
 * KEYS: the hash, the worker's last-flush mark. ARGV: flush number, then (i|f, field, n)…
 */
const ADD_FLUSH = `
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
if last >= tonumber(ARGV[1]) then return {} end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ${FLUSHED_MARK_SECONDS})
local failed = {}
for i = 2, #ARGV, 3 do
  local command = ARGV[i] == 'f' and 'HINCRBYFLOAT' or 'HINCRBY'
  local reply = redis.pcall(command, KEYS[1], ARGV[i + 1], ARGV[i + 2])
  if type(reply) == 'table' and reply.err then failed[#failed + 1] = (i + 1) / 3 end
end
return failed`;

interface PendingFlush {
  number: number;
  entries: Array<{ kind: 'i' | 'f'; field: string; value: number }>;
}

/**
 * A worker's delivery counts, kept in memory and added to the hash once a second
 * (and on close) by one script, so a scrape never sees half of a flush. A flush
 * whose answer did not come (Redis unreachable, a connection reset) is sent again,
 * the same counts under the same number, before anything counted since: the script
 * adds a number only once, so a flush Redis did apply is never added twice.
 */
export class DeliveryTally {
  private counts = new Map<string, number>();
  private sums = new Map<string, number>();
  private pending: PendingFlush | null = null;
  private flushes = 0;
  private flushing: Promise<void> | null = null;
  private readonly timer: NodeJS.Timeout;
  private readonly key: string;
  private readonly flushedKey: string;

  constructor(
    private readonly redis: RedisConnection,
    queuePrefix: string,
    private readonly log: Logger,
  ) {
    this.key = deliveryTallyKey(queuePrefix);
    // Under the same prefix (so the same Redis Cluster slot), one per worker process.
    this.flushedKey = `${this.key}:flushed:${randomUUID()}`;
    if (!('mozhnoAddFlush' in redis)) redis.defineCommand('mozhnoAddFlush', { numberOfKeys: 2, lua: ADD_FLUSH });
    this.timer = setInterval(() => void this.flush(), FLUSH_EVERY_MS);
    this.timer.unref();
  }

  add(result: string, code: string, seconds: number | null): void {
    increment(this.counts, `total|${result}|${code}`, 1);
    if (seconds === null) return;
    increment(this.counts, `bucket|${result}|${bucketOf(seconds)}`, 1);
    increment(this.sums, `sum|${result}`, seconds);
  }

  /** Sends what was counted since the last flush; one flush at a time. */
  flush(): Promise<void> {
    this.flushing ??= this.send().finally(() => (this.flushing = null));
    return this.flushing;
  }

  /** The last flush, bounded: a worker shutting down while Redis is unreachable does not wait for it. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_FLUSH_TIMEOUT_MS)));
    // A flush under way first (it may hang on a Redis that is down), then one for what came since.
    await Promise.race([(this.flushing ?? Promise.resolve()).then(() => this.flush()), gaveUp]);
    clearTimeout(timer);
  }

  /** The pending flush if there is one, then what was counted since (so close() leaves nothing behind). */
  private async send(): Promise<void> {
    for (let round = 0; round < 2; round++) if (!(await this.sendOne())) return;
  }

  /** Sends one flush; false when there was nothing to send or it did not get through. */
  private async sendOne(): Promise<boolean> {
    if (this.pending === null) {
      if (this.counts.size === 0 && this.sums.size === 0) return false;
      const entries = [
        ...[...this.counts].map(([field, value]) => ({ kind: 'i' as const, field, value })),
        ...[...this.sums].map(([field, value]) => ({ kind: 'f' as const, field, value })),
      ];
      this.pending = { number: ++this.flushes, entries };
      this.counts = new Map();
      this.sums = new Map();
    }
    const { number, entries } = this.pending;
    let failed: number[];
    try {
      const add = (this.redis as unknown as { mozhnoAddFlush(...args: Array<string | number>): Promise<number[]> }).mozhnoAddFlush;
      failed = await add.call(this.redis, this.key, this.flushedKey, number, ...entries.flatMap((e) => [e.kind, e.field, e.value]));
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'could not add delivery counts to Redis; sending them again with the next flush');
      return false;
    }
    this.pending = null;
    // Fields Redis refused go with the next flush, under a number of its own.
    for (const place of failed) {
      const entry = entries[place - 1];
      if (entry) increment(entry.kind === 'i' ? this.counts : this.sums, entry.field, entry.value);
    }
    return true;
  }
}

/**
 * The hash as Prometheus text: `mozhno_deliveries_total{result,code}` and the
 * `mozhno_delivery_duration_seconds{result}` histogram, the same names and buckets
 * a worker serves for itself, summed over every worker process.
 */
export async function fleetDeliveryMetrics(redis: RedisConnection, queuePrefix: string): Promise<string> {
  const fields = await redis.hgetall(deliveryTallyKey(queuePrefix));
  const totals: string[] = [];
  const histograms = new Map<string, { buckets: Map<string, number>; sum: number }>();
  const histogram = (result: string) => {
    let h = histograms.get(result);
    if (!h) histograms.set(result, (h = { buckets: new Map(), sum: 0 }));
    return h;
  };
  for (const [field, value] of Object.entries(fields).sort(([a], [b]) => a.localeCompare(b))) {
    const [kind, result = '', detail = ''] = field.split('|');
    if (kind === 'total') totals.push(`${DELIVERY_METRICS.deliveries.name}{result="${label(result)}",code="${label(detail)}"} ${Number(value)}`);
    else if (kind === 'bucket') histogram(result).buckets.set(detail, Number(value));
    else if (kind === 'sum') histogram(result).sum = Number(value);
  }
  const { name } = DELIVERY_METRICS.duration;
  const samples: string[] = [];
  for (const [result, { buckets, sum }] of histograms) {
    let cumulative = 0;
    for (const le of [...DURATION_BUCKETS.map(String), '+Inf']) {
      cumulative += buckets.get(le) ?? 0;
      samples.push(`${name}_bucket{le="${le}",result="${label(result)}"} ${cumulative}`);
    }
    samples.push(`${name}_sum{result="${label(result)}"} ${sum}`, `${name}_count{result="${label(result)}"} ${cumulative}`);
  }
  return [
    ...header(DELIVERY_METRICS.deliveries, 'counter'),
    ...totals,
    '',
    ...header(DELIVERY_METRICS.duration, 'histogram'),
    ...samples,
    '',
  ].join('\n');
}

function header(metric: { name: string; help: string }, type: string): string[] {
  return [`# HELP ${metric.name} ${metric.help} (every worker process)`, `# TYPE ${metric.name} ${type}`];
}

/** The `le` of the bucket a duration falls in: the first bound at or above it. */
function bucketOf(seconds: number): string {
  const bound = DURATION_BUCKETS.find((le) => seconds <= le);
  return bound === undefined ? '+Inf' : String(bound);
}

function increment(map: Map<string, number>, field: string, by: number): void {
  map.set(field, (map.get(field) ?? 0) + by);
}

function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
