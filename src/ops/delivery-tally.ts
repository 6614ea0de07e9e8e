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

/**
 * A worker's delivery counts, kept in memory and added to the hash once a second
 * (and on close) in one MULTI, so a scrape never sees half of a flush. Counts a
 * flush could not send (Redis unreachable) go with the next one.
 */
export class DeliveryTally {
  private counts = new Map<string, number>();
  private sums = new Map<string, number>();
  private flushing: Promise<void> | null = null;
  private readonly timer: NodeJS.Timeout;
  private readonly key: string;

  constructor(
    private readonly redis: RedisConnection,
    queuePrefix: string,
    private readonly log: Logger,
  ) {
    this.key = deliveryTallyKey(queuePrefix);
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

  private async send(): Promise<void> {
    if (this.counts.size === 0 && this.sums.size === 0) return;
    const counts = this.counts;
    const sums = this.sums;
    this.counts = new Map();
    this.sums = new Map();
    const multi = this.redis.multi();
    const sent = [...[...counts].map((entry) => ({ entry, map: this.counts })), ...[...sums].map((entry) => ({ entry, map: this.sums }))];
    for (const [field, n] of counts) multi.hincrby(this.key, field, n);
    for (const [field, seconds] of sums) multi.hincrbyfloat(this.key, field, seconds);
    let replies: Array<[Error | null, unknown]> | null = null;
    try {
      replies = await multi.exec();
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'could not add delivery counts to Redis; adding them with the next flush');
    }
    // What Redis did not add goes with the next flush: all of it, or (a MULTI is not rolled back)
    // only the commands that failed.
    sent.forEach(({ entry: [field, value], map }, i) => {
      if (!replies || replies[i]?.[0]) increment(map, field, value);
    });
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
