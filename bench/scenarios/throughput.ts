import type { Bench } from '../support/bench.js';
import { deliverBurst, type BurstResult } from '../support/burst.js';
import { cpuSnapshot, cpuUsed, totalCpuMs, type CpuParts } from '../support/cpu.js';
import { sampleMemory } from '../support/rss.js';
import { Stack } from '../support/stack.js';
import { note, progress, type Scenario } from './scenario.js';

/** A project whose integrations all post to one sink group (Stack.sinkProject). */
type Fanout = Awaited<ReturnType<Stack['sinkProject']>>;

/**
 * A warm-up burst (connections, JIT, template cache), then the measured one; both wait
 * for the delivery records. With `cpu`, also answers the CPU ms each part used per
 * delivery of the measured burst.
 */
async function measureFanout(bench: Bench, fanout: Fanout, what: string, cpu?: CpuParts): Promise<BurstResult & { cpuMsPerDelivery: Record<string, number> }> {
  const { integrations, events, warmupEvents } = bench.settings.sizes.throughput;
  const burst = (n: number) => deliverBurst(bench, { ...fanout, events: n, expected: n * integrations, waitForRecords: true, deadlineMs: 300_000 });
  const warm = await burst(warmupEvents);
  if (!warm.complete) note(`${what}, warm-up: ${warm.shortfall}`);
  const cpuBefore = cpu ? await cpuSnapshot(cpu) : {};
  const result = await burst(events);
  const used = cpu ? cpuUsed(cpuBefore, await cpuSnapshot(cpu)) : {};
  const cpuMsPerDelivery = Object.fromEntries(Object.entries(used).map(([part, ms]) => [part, ms / result.delivered]));
  if (!result.complete) note(`${what}: ${result.shortfall}; the figure counts only those`);
  progress(`${what}: ${result.delivered} deliveries in ${(result.elapsedMs / 1000).toFixed(2)} s, the first after ${result.firstMs?.toFixed(0)} ms`);
  return { ...result, cpuMsPerDelivery };
}

/**
 * deliveriesPerSec: the product end to end. N events × M integrations committed at
 * once into `events` (the relay is woken by NOTIFY), counted at the sink, and
 * complete only when every `deliveries` row is there. workerPeakRssMb: the highest
 * RSS (VmRSS sampled, VmHWM at the end) of the worker processes meanwhile.
 */
export const throughputScenario: Scenario = {
  name: 'throughput',
  title: 'product end to end: events × integrations → sink + delivery records',
  async run(bench) {
    const database = await databaseActivity(bench);
    const stack = await Stack.start(bench, { workers: bench.settings.workers });
    let result: Awaited<ReturnType<typeof measureFanout>>;
    let peakRss: number;
    const { integrations, events, warmupEvents } = bench.settings.sizes.throughput;
    try {
      const fanout = await stack.sinkProject('tp', integrations);
      const memory = sampleMemory(stack.workerPids);
      result = await measureFanout(bench, fanout, `product with ${bench.settings.workers} worker(s)`, {
        pids: { worker: stack.workerPids, api: [stack.api.pid], sink: [bench.sink.pid] },
        db: bench.db,
        redis: bench.redis,
      });
      peakRss = memory.stop();
      await bench.retire(fanout.project);
    } finally {
      await stack.stop();
    }
    // Backends report their statistics when they exit; the stack has stopped, so everything is counted.
    const activity = await databaseActivity(bench);
    const deliveries = (events + warmupEvents) * integrations;
    const cpu = result.cpuMsPerDelivery;
    return {
      deliveriesPerSec: result.perSec,
      firstDeliveryMs: result.firstMs ?? Number.NaN,
      workerPeakRssMb: peakRss,
      workerCpuMsPerDelivery: cpu.worker ?? Number.NaN,
      apiCpuMsPerDelivery: cpu.api ?? Number.NaN,
      postgresCpuMsPerDelivery: cpu.postgres ?? Number.NaN,
      redisCpuMsPerDelivery: cpu.redis ?? Number.NaN,
      sinkCpuMsPerDelivery: cpu.sink ?? Number.NaN,
      totalCpuMsPerDelivery: totalCpuMs(cpu),
      dbCommitsPerDelivery: (activity.commits - database.commits) / deliveries,
      dbRowWritesPerDelivery: (activity.rowWrites - database.rowWrites) / deliveries,
    };
  },
};

/** deliveries/s with 1, 2 and 4 worker processes (on 2 cores this mostly shows what coordination costs). */
export const scaleScenario: Scenario = {
  name: 'scale',
  title: 'product end to end with 1, 2, 4 worker processes',
  async run(bench) {
    const counts = bench.settings.sizes.scale;
    const stack = await Stack.start(bench, { workers: counts[0]! });
    const figures: Record<string, number> = {};
    try {
      const fanout = await stack.sinkProject('scale', bench.settings.sizes.throughput.integrations);
      for (const workers of counts) {
        await stack.setWorkers(workers);
        figures[`scale${workers}PerSec`] = (await measureFanout(bench, fanout, `${workers} worker process(es)`)).perSec;
      }
      await bench.retire(fanout.project);
    } finally {
      await stack.stop();
    }
    return figures;
  },
};

/** The run database's transaction and row-write counters (pg_stat_database). */
async function databaseActivity(bench: Bench): Promise<{ commits: number; rowWrites: number }> {
  const { rows } = (await bench.db.raw(
    `SELECT xact_commit AS commits, tup_inserted + tup_updated + tup_deleted AS row_writes FROM pg_stat_database WHERE datname = current_database()`,
  )) as { rows: Array<{ commits: string; row_writes: string }> };
  return { commits: Number(rows[0]?.commits ?? 0), rowWrites: Number(rows[0]?.row_writes ?? 0) };
}
