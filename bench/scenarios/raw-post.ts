import { Child } from '../support/children.js';
import { runSizedBaseline } from '../support/sizes.js';
import { sampleBody } from '../support/workload.js';
import { progress, type Scenario } from './scenario.js';

/** rawPostPerSec: the ceiling — a plain undici loop POSTing the product's body to the same sink at the same concurrency. */
export const rawPostScenario: Scenario = {
  name: 'raw',
  title: 'baseline: plain undici POST loop',
  async run(bench) {
    const child = new Child('raw POST loop', 'bench/processes/raw-post.ts', { env: { ...process.env, BENCH_CA_FILE: bench.caFile } });
    try {
      await child.ready();
      const run = (n: number) =>
        child.ipc.request<{ elapsedMs: number; failures: number }>(
          { type: 'run', total: n, concurrency: bench.settings.concurrency, url: `${bench.sink.url}/raw/post`, body: sampleBody() },
          600_000,
        );
      const timed = async (n: number) => {
        const arrivals = await bench.sink.expect('raw', n);
        const { elapsedMs, failures } = await run(n);
        const arrived = await arrivals(10_000);
        if (failures > 0 || !arrived.complete) throw new Error(`raw POST loop: ${failures} failed, ${arrived.arrived} of ${n} arrived`);
        return elapsedMs;
      };
      const { size, elapsedMs } = await runSizedBaseline(bench.settings.sizes, bench.settings.concurrency, timed);
      progress(`raw POST: ${size} in ${(elapsedMs / 1000).toFixed(2)} s`);
      return { rawPostPerSec: (size / elapsedMs) * 1000 };
    } finally {
      await child.stop();
    }
  },
};
