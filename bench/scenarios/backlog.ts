import { deliverBurst } from '../support/burst.js';
import { Stack } from '../support/stack.js';
import { commitEvents } from '../support/workload.js';
import { note, progress, type Scenario } from './scenario.js';

/**
 * backlogDelayMs: how much later healthy deliveries arrive when, just before them,
 * ten thousand jobs for an endpoint that never answers were queued — each of those
 * is taken, finds its integration at WEBHOOK_MAX_IN_FLIGHT, and is parked. Measured
 * as the healthy burst's time with the backlog ahead of it minus the same burst's
 * time without one, in the same stack.
 */
export const backlogScenario: Scenario = {
  name: 'backlog',
  title: '10 000 jobs for a hanging endpoint queued ahead of healthy deliveries',
  async run(bench) {
    const { hangingJobs, healthyEvents, healthyIntegrations } = bench.settings.sizes.backlog;
    const stack = await Stack.start(bench, { workers: bench.settings.workers, stopGraceMs: 3_000 });
    try {
      const { project: healthy, group } = await stack.sinkProject('backlog-ok', healthyIntegrations);
      const { project: hanging } = await stack.sinkProject('backlog-hang', 1, 1);
      const burst = (deadlineMs: number) =>
        deliverBurst(bench, { project: healthy, group, events: healthyEvents, expected: healthyEvents * healthyIntegrations, waitForRecords: false, deadlineMs });

      await burst(60_000); // warm-up
      const alone = await burst(60_000);
      await commitEvents(bench.db, hanging, hangingJobs, 'backlog');
      const behind = await burst(60_000);
      if (!alone.complete || !behind.complete) note(`backlog: ${alone.shortfall ?? behind.shortfall}`);
      const delay = behind.elapsedMs - alone.elapsedMs;
      progress(`backlog: healthy burst ${alone.elapsedMs.toFixed(0)} ms alone, ${behind.elapsedMs.toFixed(0)} ms behind ${hangingJobs} hanging jobs`);
      await bench.retire(healthy);
      await bench.retire(hanging);
      return { backlogAloneMs: alone.elapsedMs, backlogBehindMs: behind.elapsedMs, backlogDelayMs: delay };
    } finally {
      await stack.stop();
    }
  },
};
