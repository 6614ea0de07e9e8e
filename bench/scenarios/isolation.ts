import { deliverBurst, type BurstResult } from '../support/burst.js';
import { Stack } from '../support/stack.js';
import { note, progress, type Scenario } from './scenario.js';

/**
 * isolationRatio: deliveries/s to the healthy endpoints of a project whose 10
 * endpoints include one that never answers, divided by deliveries/s of a project
 * whose 10 endpoints are all healthy. Counted at the sink. WEBHOOK_TIMEOUT_MS stays
 * at its default (30 s), so within the measurement no hanging delivery times out:
 * whatever slots the hanging endpoint takes, it keeps.
 */
export const isolationScenario: Scenario = {
  name: 'isolation',
  title: '1 of 10 endpoints hanging vs all 10 healthy',
  async run(bench) {
    const { integrations, events, warmupEvents } = bench.settings.sizes.isolation;
    // Workers hold the hanging requests when the stack stops; they are killed after 3 s rather than waiting for the timeout.
    const stack = await Stack.start(bench, { workers: bench.settings.workers, stopGraceMs: 3_000 });
    try {
      const healthy = { ...(await stack.sinkProject('iso-ok', integrations)), healthy: integrations };
      const mixed = { ...(await stack.sinkProject('iso-mixed', integrations, 1)), healthy: integrations - 1 };
      const burst = (target: typeof healthy, n: number, deadlineMs: number): Promise<BurstResult> =>
        deliverBurst(bench, { project: target.project, group: target.group, events: n, expected: n * target.healthy, waitForRecords: false, deadlineMs });

      const warm = await burst(healthy, warmupEvents, 60_000);
      if (!warm.complete) note(`isolation warm-up: ${warm.shortfall}`);
      const allHealthy = await burst(healthy, events, 300_000);
      if (!allHealthy.complete) note(`isolation, all healthy: ${allHealthy.shortfall}; the figure counts only those`);
      // A starved run may never finish: give it five times as long as the healthy one took, then count what arrived.
      const oneHanging = await burst(mixed, events, Math.max(10_000, 5 * allHealthy.elapsedMs));
      progress(`isolation: all healthy ${allHealthy.perSec.toFixed(0)}/s; one hanging ${oneHanging.perSec.toFixed(0)}/s to the other ${mixed.healthy}`);
      if (!oneHanging.complete) note(`isolation, one hanging: ${oneHanging.shortfall} (the deadline is 5× the healthy run); the figure counts those`);
      await bench.retire(healthy.project);
      await bench.retire(mixed.project);
      return { isolationHealthyPerSec: allHealthy.perSec, isolationHangingPerSec: oneHanging.perSec, isolationRatio: oneHanging.perSec / allHealthy.perSec };
    } finally {
      await stack.stop();
    }
  },
};
