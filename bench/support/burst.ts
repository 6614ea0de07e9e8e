import type { Bench, BenchProject } from './bench.js';
import { unlessAChildCrashes } from './children.js';
import { now, sleep } from './clock.js';
import { commitEvents } from './workload.js';
import { STALL_MS } from './sink.js';

export interface BurstOptions {
  project: BenchProject;
  /** Events committed at once; each is delivered to every integration of the project. */
  events: number;
  /** Sink group to count, and how many arrivals there make the burst complete. */
  group: string;
  expected: number;
  /** Also wait until the delivery records of this burst exist (`deliveries` rows). */
  waitForRecords: boolean;
  /** Give up after this long, reporting what arrived by then. */
  deadlineMs: number;
}

export interface BurstResult {
  /** Every delivery arrived (and, when asked for, was recorded) in time. */
  complete: boolean;
  /** Deliveries that arrived at the sink (and, when asked for, were recorded): what `perSec` counts. */
  delivered: number;
  elapsedMs: number;
  perSec: number;
  /** From the commit to the first arrival at the sink (relay and queueing before anything moves), when complete. */
  firstMs: number | null;
  /** Why the burst is incomplete, in a few words. */
  shortfall: string | null;
}

let bursts = 0;

/**
 * One throughput measurement: commit `events` events at once (as N API writes would
 * have), then wait until the sink counted every delivery and, if asked, until the
 * product recorded every one of them. The clock runs from just before the commit to
 * the later of the two: relay, queue, worker, POST and the database writes are all in.
 */
export async function deliverBurst(bench: Bench, options: BurstOptions): Promise<BurstResult> {
  bursts += 1;
  const before = await maxDeliveryId(bench);
  const arrivals = await bench.sink.expect(options.group, options.expected);
  const started = now();
  const range = await commitEvents(bench.db, options.project, options.events, `burst${bursts}`);
  const sink = await arrivals(options.deadlineMs - (now() - started));
  const firstMs = sink.first === null ? null : sink.first - started;
  if (!sink.complete) {
    return result(false, sink.arrived, sink.at - started, firstMs, `${sink.arrived} of ${options.expected} arrived at the sink in ${seconds(sink.at - started)}${sink.stalled ? ` (then nothing for ${seconds(STALL_MS)}: is the worker failing them? see its log below)` : ''}`);
  }
  if (!options.waitForRecords) return result(true, sink.arrived, sink.at - started, firstMs, null);
  // Records normally trail the last arrival by a few milliseconds; missing ones after this long are lost.
  const recordsDeadline = now() + Math.max(10_000, (sink.at - started) / 2);
  const records = await unlessAChildCrashes(waitForRecords(bench, before, range, options.expected, recordsDeadline));
  const ended = Math.max(sink.at, records.at);
  if (records.count < options.expected) {
    return result(false, records.count, ended - started, firstMs, `all ${options.expected} arrived at the sink but only ${records.count} were recorded (deliveries rows)`);
  }
  return result(true, records.count, ended - started, firstMs, null);
}

function result(complete: boolean, delivered: number, elapsedMs: number, firstMs: number | null, shortfall: string | null): BurstResult {
  return { complete, delivered, elapsedMs, perSec: (delivered / elapsedMs) * 1000, firstMs, shortfall };
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

async function maxDeliveryId(bench: Bench): Promise<number> {
  const [row] = (await bench.db('deliveries').max('id as id')) as Array<{ id: number | null }>;
  return Number(row?.id ?? 0);
}

/**
 * Polls until the burst's records are all there or the deadline passes; answers how
 * many there are and when they were seen. Cheap: only new rows by primary key, and
 * only once the sink has everything, so it does not compete with the deliveries.
 */
async function waitForRecords(bench: Bench, afterId: number, range: { first: number; last: number }, expected: number, deadline: number): Promise<{ count: number; at: number }> {
  for (;;) {
    const [row] = (await bench.db('deliveries')
      .where('id', '>', afterId)
      .whereBetween('event_id', [range.first, range.last])
      .count('* as n')) as Array<{ n: number | string }>;
    const count = Number(row?.n ?? 0);
    if (count >= expected || now() > deadline) return { count, at: now() };
    await sleep(10);
  }
}
