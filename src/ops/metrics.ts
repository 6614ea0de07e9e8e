import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { within } from './deadline.js';
import type { DeliveryTally } from './delivery-tally.js';

export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** A change can wait far longer than one attempt lasts: a relay held up by Redis, a job in line for a hanging endpoint (hours). */
export const LATENCY_BUCKETS = [...DURATION_BUCKETS, 300, 900, 3600, 4 * 3600, 24 * 3600];

/** Served by each worker for itself and, summed over every worker, by the api (see DeliveryTally). */
export const DELIVERY_METRICS = {
  deliveries: { name: 'mozhno_deliveries_total', help: 'Delivery attempts by result (success, failure) and error code (none when it succeeded)' },
  duration: { name: 'mozhno_delivery_duration_seconds', help: 'Time of one delivery attempt: DNS, connect, TLS, request and response' },
};

/** A scrape leaves out what Redis or PostgreSQL does not answer in time, rather than hanging (as /readyz's checks). */
const SOURCE_TIMEOUT_MS = 2_000;

/** Prometheus text and its content type: a prom-client registry, or the api's registry plus the fleet's delivery counts. */
export interface Exposition {
  readonly contentType: string;
  metrics(): Promise<string>;
}

/** What a worker process measures; served on WORKER_METRICS_PORT. */
export class WorkerMetrics {
  readonly registry = new Registry();
  readonly deliveries = new Counter({
    ...DELIVERY_METRICS.deliveries,
    labelNames: ['result', 'code'] as const,
    registers: [this.registry],
  });
  readonly dropped = new Counter({
    name: 'mozhno_deliveries_dropped_total',
    help: 'Jobs dropped because their integration was deleted, disabled or unsubscribed after queueing',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    ...DELIVERY_METRICS.duration,
    labelNames: ['result'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'mozhno_delivery_latency_seconds',
    help: 'From the change committing to its delivery attempt finishing',
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly deferred = new Counter({
    name: 'mozhno_deliveries_deferred_total',
    help: 'Jobs put back for a few seconds, unsent, because their integration could not be read (PostgreSQL unreachable)',
    registers: [this.registry],
  });
  readonly parked = new Counter({
    name: 'mozhno_deliveries_parked_total',
    help: 'Jobs this worker took and parked because their integration had WEBHOOK_MAX_IN_FLIGHT deliveries in flight',
    registers: [this.registry],
  });

  /** `tally` adds this worker's deliveries to the fleet's totals the api serves. */
  constructor(private readonly tally?: DeliveryTally) {
    collectDefaultMetrics({ register: this.registry });
  }

  /** One delivery attempt finished; `seconds` null: no send was timed (E_BACKLOG, E_STALLED), so there is no duration to observe. */
  delivered(result: 'success' | 'failure', code: string, seconds: number | null): void {
    this.deliveries.inc({ result, code });
    if (seconds !== null) this.duration.observe({ result }, seconds);
    this.tally?.add(result, code, seconds);
  }
}

/** What the api process measures; served at /metrics. Queue depth and relay lag are read at scrape time. */
export class ApiMetrics {
  readonly registry = new Registry();
  readonly requests = new Histogram({
    name: 'mozhno_http_request_duration_seconds',
    help: 'API requests by method, route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly eventsRelayed = new Counter({
    name: 'mozhno_events_relayed_total',
    help: 'Committed events handed to the delivery queue by this process',
    registers: [this.registry],
  });
  readonly jobsQueued = new Counter({
    name: 'mozhno_jobs_queued_total',
    help: 'Delivery jobs queued by this process (one per event and matching integration)',
    registers: [this.registry],
  });
  readonly jobsQueuedParked = new Counter({
    name: 'mozhno_jobs_queued_parked_total',
    help: 'Of those, jobs queued straight into line for an in-flight slot, because their integration already had jobs waiting',
    registers: [this.registry],
  });
  readonly jobs: Gauge<'state'>;

  /** What /metrics serves: this process's registry, then every worker's deliveries (none while Redis is unreachable). */
  readonly exposition: Exposition;

  constructor(sources: { jobCounts(): Promise<Record<string, number>>; relayLagSeconds(): Promise<number>; fleetDeliveries(): Promise<string> }) {
    collectDefaultMetrics({ register: this.registry });
    this.exposition = {
      contentType: this.registry.contentType,
      metrics: async () => {
        const [own, lag, fleet] = await Promise.all([
          this.registry.metrics(),
          within(sources.relayLagSeconds(), SOURCE_TIMEOUT_MS).then(relayLagText, () => relayLagText(null)),
          within(sources.fleetDeliveries(), SOURCE_TIMEOUT_MS).catch(() => ''),
        ]);
        return `${own}\n${lag}${fleet}`;
      },
    };
    this.jobs = new Gauge({
      name: 'mozhno_jobs',
      help: 'Delivery jobs in the queue by state (delayed includes jobs waiting for an in-flight slot)',
      labelNames: ['state'] as const,
      registers: [this.registry],
      async collect() {
        try {
          const counts = await within(sources.jobCounts(), SOURCE_TIMEOUT_MS);
          for (const state of ['waiting', 'active', 'delayed', 'failed']) this.set({ state }, counts[state] ?? 0);
        } catch {
          this.reset(); // Redis unreachable: report nothing rather than stale numbers
        }
      },
    });
  }
}

/**
 * The relay's lag, written out here rather than by a prom-client gauge: an unlabelled gauge
 * always has a sample (0 after a reset), and 0 means "no event waits", which is the opposite of
 * what an unreachable PostgreSQL may hide. Unread, the metric has no sample: an alert on it
 * sees it absent rather than fine.
 */
function relayLagText(seconds: number | null): string {
  const head = '# HELP mozhno_relay_lag_seconds Age of the oldest committed event not yet queued (0 when none waits; no sample while PostgreSQL does not answer)\n# TYPE mozhno_relay_lag_seconds gauge\n';
  return seconds === null ? head : `${head}mozhno_relay_lag_seconds ${seconds}\n`;
}
