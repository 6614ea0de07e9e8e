import { unlessAChildCrashes } from '../support/children.js';
import { now, sleep } from '../support/clock.js';
import { quantile } from '../support/stats.js';
import { Stack } from '../support/stack.js';
import { progress, type Scenario } from './scenario.js';

/**
 * latencyP50Ms, latencyP99Ms: from commit to arrival at the sink, at a steady rate of
 * flag creations through the API (open loop: each request leaves on schedule,
 * whether or not earlier ones were answered). Commit time is when the API's 201
 * arrived; arrival is matched by the flag key, which the body carries as its
 * resourceName. One integration, so each change is one delivery. A delivery may
 * arrive before the API's answer does; such latencies are negative and kept.
 * Measured after a warm-up of two seconds at the same rate, so the figures are the
 * steady state's, not the first burst's (a cold JIT, connection pools growing).
 */
const WARM_UP_SECONDS = 2;
export const latencyScenario: Scenario = {
  name: 'latency',
  title: 'commit → sink at a steady rate of API writes',
  async run(bench) {
    const { ratePerSec, seconds } = bench.settings.sizes.latency;
    const stack = await Stack.start(bench, { workers: bench.settings.workers });
    try {
      const project = await bench.project('latency');
      const group = `lat-${project.projectId}`;
      await stack.createIntegrations(project, [`${bench.sink.url}/${group}/i0`], ['flag.created']);
      const client = stack.client(project);
      const create = (key: string) => client.expect(201, 'POST', '/api/v1/flags', { key, name: `Latency ${key}` });

      /** `total` creations at the steady rate (open loop): when each was answered, and how long that took. */
      const openLoop = async (prefix: string, total: number) => {
        const intervalMs = 1000 / ratePerSec;
        const answeredAt = new Map<string, number>();
        const apiMs: number[] = [];
        const writes: Array<Promise<unknown>> = [];
        const started = now();
        for (let i = 0; i < total; i++) {
          await sleep(started + i * intervalMs - now());
          const key = `${prefix}-${i}`;
          const write = create(key).then((answer) => {
            answeredAt.set(key, answer.at);
            apiMs.push(answer.ms);
          });
          write.catch(() => undefined); // failures surface from Promise.all below, not as unhandled rejections
          writes.push(write);
        }
        await unlessAChildCrashes(Promise.all(writes));
        return { answeredAt, apiMs, seconds: (now() - started) / 1000 };
      };

      // Warm-up: two seconds at the same rate (JIT, connection pools, caches), then forget their arrivals.
      const warmCount = Math.max(20, Math.round(ratePerSec * WARM_UP_SECONDS));
      const warm = await bench.sink.expect(group, warmCount);
      await openLoop('warm', warmCount);
      if (!(await warm(30_000)).complete) throw new Error('latency warm-up deliveries did not arrive');
      await bench.sink.takeMarkers();

      const total = Math.round(ratePerSec * seconds);
      const arrivals = await bench.sink.expect(group, total);
      const { answeredAt, apiMs, seconds: sentFor } = await openLoop('lat', total);
      const arrived = await arrivals(30_000);
      const markers = await bench.sink.takeMarkers();
      const latencies = [...answeredAt].flatMap(([key, at]) => {
        const arrival = markers.get(key);
        return arrival === undefined ? [] : [arrival - at];
      });
      if (latencies.length === 0) throw new Error('latency: no delivery arrived');
      progress(`latency: ${total} writes in ${sentFor.toFixed(1)} s after a ${warmCount}-write warm-up, ${arrived.arrived} delivered, ${latencies.filter((ms) => ms < 0).length} before the API answered`);
      await bench.retire(project);
      return {
        latencyP50Ms: quantile(latencies, 0.5),
        latencyP99Ms: quantile(latencies, 0.99),
        latencyMaxMs: Math.max(...latencies),
        latencyLost: total - latencies.length,
        latencyApiP50Ms: quantile(apiMs, 0.5),
      };
    } finally {
      await stack.stop();
    }
  },
};
