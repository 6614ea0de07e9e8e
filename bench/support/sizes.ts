/** How big each scenario is. The default run takes a few minutes on two cores; --quick only checks that everything works. */
export interface Sizes {
  throughput: {
    /** Integrations subscribed to every event; deliveries = events × integrations. */
    integrations: number;
    /** At most DELIVERY_RETENTION (100), so every delivery record of a burst is still there to be counted. */
    events: number;
    /**
     * Deliveries before the measured burst, as many as it; the baselines warm up with as
     * many jobs. After 2 000 the product's worker was still compiling (perf showed ~20 µs
     * of V8 compiler per delivery in the first 1.5 s), and only once a queue has finished
     * 10 000 jobs does each new one also remove the oldest (JOB_OPTIONS.removeOnComplete):
     * a baseline measured sooner skipped that work for part of its run.
     */
    warmupEvents: number;
  };
  /**
   * The baselines are much faster than the product: their measured runs are sized from
   * a warm-up's rate to last about this long (never fewer than the product's
   * events × integrations). 0: exactly events × integrations.
   */
  baselineSeconds: number;
  /** One integration: each change is one delivery, matched at the sink by its resourceName. */
  latency: { ratePerSec: number; seconds: number };
  /**
   * `samples` PUTs per project, the two projects taking turns, one PUT every
   * `intervalMs` — long enough for the 100 deliveries of a PUT to be done before the next.
   */
  api: { integrations: number; samples: number; warmup: number; intervalMs: number };
  isolation: { integrations: number; events: number; warmupEvents: number };
  /** Jobs for one hanging endpoint queued just ahead of a healthy burst of events × integrations. */
  backlog: { hangingJobs: number; healthyEvents: number; healthyIntegrations: number };
  /** Worker process counts of the scale figures. */
  scale: number[];
}

export const DEFAULT_SIZES: Sizes = {
  throughput: { integrations: 200, events: 100, warmupEvents: 100 },
  baselineSeconds: 6,
  latency: { ratePerSec: 100, seconds: 20 },
  api: { integrations: 100, samples: 100, warmup: 10, intervalMs: 100 },
  isolation: { integrations: 10, events: 600, warmupEvents: 50 },
  backlog: { hangingJobs: 10_000, healthyEvents: 20, healthyIntegrations: 5 },
  scale: [1, 2, 4],
};

export const QUICK_SIZES: Sizes = {
  throughput: { integrations: 5, events: 10, warmupEvents: 2 },
  baselineSeconds: 0,
  latency: { ratePerSec: 50, seconds: 1 },
  api: { integrations: 5, samples: 10, warmup: 3, intervalMs: 20 },
  isolation: { integrations: 10, events: 10, warmupEvents: 2 },
  backlog: { hangingJobs: 100, healthyEvents: 2, healthyIntegrations: 2 },
  scale: [1, 2],
};

/**
 * Runs a baseline through `timed` (which answers how long n requests took): a warm-up
 * the size of the product's, then runs growing from the product's events × integrations until one
 * lasts at least 60% of `baselineSeconds` — the earlier ones were more warm-up.
 */
export async function runSizedBaseline(sizes: Sizes, concurrency: number, timed: (n: number) => Promise<number>): Promise<{ size: number; elapsedMs: number }> {
  const product = sizes.throughput.events * sizes.throughput.integrations;
  await timed(Math.max(5 * concurrency, sizes.throughput.warmupEvents * sizes.throughput.integrations));
  const targetMs = sizes.baselineSeconds * 1000;
  const largest = 50 * product;
  let size = product;
  for (let attempt = 1; ; attempt++) {
    const elapsedMs = await timed(size);
    if (elapsedMs >= 0.6 * targetMs || size >= largest || attempt === 4) return { size, elapsedMs };
    size = Math.round(Math.min(largest, (size * targetMs) / elapsedMs));
  }
}
