import type { ApiAnswer } from '../support/api-client.js';
import type { BenchProject } from '../support/bench.js';
import { unlessAChildCrashes } from '../support/children.js';
import { now, sleep } from '../support/clock.js';
import { quantile } from '../support/stats.js';
import { Stack } from '../support/stack.js';
import { progress, type Scenario } from './scenario.js';

/**
 * apiP50Ms0, apiP50Ms100, apiOverheadRatio: the p50 of `PUT /api/v1/flags/:id` (the
 * name alternating, so each is a real change with an event) for a flag of a project
 * without integrations and for one of a project with 100 integrations subscribed to
 * flag.updated. The two take turns, one request at a time on a fixed schedule that
 * leaves time for one PUT's deliveries to be done before the next PUT (so that neither
 * project's PUTs run into the other's deliveries): the ratio is what 100 matching
 * integrations add to the write itself — in the request, and in the api process right
 * after the commit (the relay) — not what the workers' CPU costs a 2-core machine.
 */
export const apiOverheadScenario: Scenario = {
  name: 'api',
  title: 'PUT /api/v1/flags/:id with 0 and with 100 matching integrations',
  async run(bench) {
    const { integrations, samples, warmup, intervalMs } = bench.settings.sizes.api;
    const stack = await Stack.start(bench, { workers: bench.settings.workers });
    try {
      const quiet = await flagOf(stack, await bench.project('api-0'));
      const busyProject = await bench.project('api-100');
      const group = `api-${busyProject.projectId}`;
      await stack.createIntegrations(
        busyProject,
        Array.from({ length: integrations }, (_, i) => `${bench.sink.url}/${group}/i${i}`),
        ['flag.updated'],
      );
      const busy = await flagOf(stack, busyProject);

      const times = { quiet: [] as number[], busy: [] as number[] };
      const started = now();
      for (let i = 0; i < 2 * (warmup + samples); i++) {
        await sleep(started + i * intervalMs - now());
        const [target, into] = i % 2 === 0 ? [quiet, times.quiet] : [busy, times.busy];
        const answer = await unlessAChildCrashes(target.put(`Overhead ${Math.floor(i / 2) % 2}`));
        if (i >= 2 * warmup) into.push(answer.ms);
      }
      const p0 = quantile(times.quiet, 0.5);
      const p100 = quantile(times.busy, 0.5);
      progress(`api: PUT p50 ${p0.toFixed(2)} ms without integrations, ${p100.toFixed(2)} ms with ${integrations}`);
      await bench.retire(busyProject);
      // The keys name the default size; a --quick run measures fewer integrations under the same names.
      return {
        apiP50Ms0: p0,
        apiP99Ms0: quantile(times.quiet, 0.99),
        apiP50Ms100: p100,
        apiP99Ms100: quantile(times.busy, 0.99),
        apiOverheadRatio: p100 / p0,
      };
    } finally {
      await stack.stop();
    }
  },
};

/** A flag of the project, and how to rename it through the API. */
async function flagOf(stack: Stack, project: BenchProject): Promise<{ put(name: string): Promise<ApiAnswer> }> {
  const client = stack.client(project);
  const flag = await client.expect(201, 'POST', '/api/v1/flags', { key: 'overhead', name: 'Overhead' });
  const path = `/api/v1/flags/${flag.body.id as number}`;
  return { put: (name) => client.expect(200, 'PUT', path, { name }) };
}
