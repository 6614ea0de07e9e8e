import { Queue } from 'bullmq';
import { JOB_OPTIONS } from '../../src/delivery/queue.js';
import type { BareJob } from '../processes/bare-worker.js';
import { Child } from '../support/children.js';
import { now } from '../support/clock.js';
import { cpuSnapshot, cpuUsed, totalCpuMs } from '../support/cpu.js';
import { runSizedBaseline } from '../support/sizes.js';
import { sampleBody } from '../support/workload.js';
import { progress, type Scenario } from './scenario.js';

const QUEUE = 'bare';
const CHUNK = 1_000;

/**
 * bareBullmqPerSec: BullMQ as the product uses it (same job options, ids unique per
 * event and integration, one worker process at WORKER_CONCURRENCY) doing only the
 * POST. Jobs are added with addBulk, a thousand at a time, from the bench; the clock
 * runs from the first add to the last arrival at the sink.
 */
export const bareBullmqScenario: Scenario = {
  name: 'bare',
  title: 'baseline: bare BullMQ queue + worker doing only the POST',
  async run(bench) {
    const { integrations } = bench.settings.sizes.throughput;
    const prefix = bench.newQueuePrefix();
    const queue = new Queue<BareJob>(QUEUE, { connection: bench.redis, prefix, defaultJobOptions: JOB_OPTIONS });
    const child = new Child('bare BullMQ worker', 'bench/processes/bare-worker.ts', {
      env: { ...process.env, BENCH_CA_FILE: bench.caFile, BENCH_QUEUE: QUEUE, QUEUE_PREFIX: prefix, REDIS_URL: bench.redisUrl, WORKER_CONCURRENCY: String(bench.settings.concurrency) },
      nodeArgs: bench.settings.nodeArgs,
    });
    let eventId = 0;
    const body = sampleBody();
    /** `n` jobs, as the relay would make them for n / integrations events. */
    const addJobs = async (n: number) => {
      for (let start = 0; start < n; start += CHUNK) {
        const jobs = [];
        for (let i = start; i < Math.min(n, start + CHUNK); i++) {
          const integration = i % integrations;
          if (integration === 0) eventId += 1;
          jobs.push({
            name: 'flag.updated',
            data: { url: `${bench.sink.url}/bare/i${integration}`, body, webhookId: `msg_e${eventId}_i${integration}` },
            opts: { jobId: `e${eventId}-i${integration}` },
          });
        }
        await queue.addBulk(jobs);
      }
    };
    try {
      await child.ready();
      const parts = { pids: { worker: [child.pid], sink: [bench.sink.pid] }, redis: bench.redis };
      let cpu: Record<string, number> = {};
      const timed = async (n: number) => {
        const arrivals = await bench.sink.expect('bare', n);
        const cpuBefore = await cpuSnapshot(parts);
        const ownBefore = process.cpuUsage();
        const started = now();
        await addJobs(n);
        const arrived = await arrivals(300_000);
        if (!arrived.complete) throw new Error(`bare BullMQ: ${arrived.arrived} of ${n} arrived`);
        const own = process.cpuUsage(ownBefore);
        cpu = cpuUsed(cpuBefore, await cpuSnapshot(parts));
        // The bench itself adds the jobs here, as the api's relay does for the product.
        cpu.producer = (own.user + own.system) / 1000;
        return arrived.at - started;
      };
      const { size, elapsedMs } = await runSizedBaseline(bench.settings.sizes, bench.settings.concurrency, timed);
      progress(`bare BullMQ: ${size} in ${(elapsedMs / 1000).toFixed(2)} s`);
      return {
        bareBullmqPerSec: (size / elapsedMs) * 1000,
        // CPU of the last (measured) run.
        bareWorkerCpuMsPerJob: cpu.worker! / size,
        bareRedisCpuMsPerJob: cpu.redis! / size,
        bareSinkCpuMsPerJob: cpu.sink! / size,
        bareProducerCpuMsPerJob: cpu.producer! / size,
        bareTotalCpuMsPerJob: totalCpuMs(cpu) / size,
      };
    } finally {
      await child.stop();
      await queue.close();
      await bench.deleteKeys(`${prefix}:`);
    }
  },
};
