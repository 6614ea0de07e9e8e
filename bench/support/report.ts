import type { Figures } from '../scenarios/scenario.js';

interface Target {
  op: '>=' | '<=';
  value: number;
}

interface FigureSpec {
  key: string;
  /** What it is, in a few words. */
  label: string;
  unit: '/s' | 'ms' | 'MiB' | '×' | 'count' | '';
  /** The figure this one is compared to, measured in the same run. */
  baseline?: string;
  target?: Target;
}

/** The table's rows, in order; figures not measured in this run are left out. */
export const FIGURES: FigureSpec[] = [
  { key: 'rawPostPerSec', label: 'plain undici POST loop (ceiling)', unit: '/s' },
  { key: 'bareBullmqPerSec', label: 'bare BullMQ + POST', unit: '/s', baseline: 'rawPostPerSec' },
  { key: 'deliveriesPerSec', label: 'product end to end', unit: '/s', baseline: 'bareBullmqPerSec' },
  { key: 'firstDeliveryMs', label: 'commit → first delivery of the burst', unit: 'ms' },
  { key: 'ratioVsBareBullmq', label: 'product / bare BullMQ', unit: '×', target: { op: '>=', value: 0.8 } },
  { key: 'latencyP50Ms', label: 'commit → sink, p50', unit: 'ms', target: { op: '<=', value: 15 } },
  { key: 'latencyP99Ms', label: 'commit → sink, p99', unit: 'ms', target: { op: '<=', value: 100 } },
  { key: 'latencyMaxMs', label: 'commit → sink, max', unit: 'ms' },
  { key: 'latencyLost', label: 'latency deliveries not arrived', unit: 'count' },
  { key: 'latencyApiP50Ms', label: 'POST /flags answer in the latency run, p50', unit: 'ms' },
  { key: 'apiP50Ms0', label: 'PUT /flags/:id, 0 integrations, p50', unit: 'ms' },
  { key: 'apiP50Ms100', label: 'PUT /flags/:id, 100 integrations, p50', unit: 'ms', baseline: 'apiP50Ms0' },
  { key: 'apiOverheadRatio', label: 'PUT p50 with 100 / with 0', unit: '×', target: { op: '<=', value: 1.25 } },
  { key: 'apiP99Ms0', label: 'PUT /flags/:id, 0 integrations, p99', unit: 'ms' },
  { key: 'apiP99Ms100', label: 'PUT /flags/:id, 100 integrations, p99', unit: 'ms', baseline: 'apiP99Ms0' },
  { key: 'isolationHealthyPerSec', label: '10 healthy endpoints', unit: '/s' },
  { key: 'isolationHangingPerSec', label: '9 healthy + 1 hanging: to the 9', unit: '/s', baseline: 'isolationHealthyPerSec' },
  { key: 'isolationRatio', label: 'hanging / healthy', unit: '×', target: { op: '>=', value: 0.9 } },
  { key: 'backlogAloneMs', label: 'healthy burst (100 deliveries), nothing ahead', unit: 'ms' },
  { key: 'backlogBehindMs', label: 'the same behind 10 000 hanging-endpoint jobs', unit: 'ms', baseline: 'backlogAloneMs' },
  { key: 'backlogDelayMs', label: 'delay the backlog adds', unit: 'ms', target: { op: '<=', value: 2000 } },
  { key: 'workerPeakRssMb', label: 'worker peak RSS (throughput run)', unit: 'MiB', target: { op: '<=', value: 256 } },
  { key: 'scale1PerSec', label: 'product, 1 worker process', unit: '/s' },
  { key: 'scale2PerSec', label: 'product, 2 worker processes', unit: '/s', baseline: 'scale1PerSec' },
  { key: 'scale4PerSec', label: 'product, 4 worker processes', unit: '/s', baseline: 'scale1PerSec' },
  { key: 'workerCpuMsPerDelivery', label: 'CPU per delivery: worker', unit: 'ms', baseline: 'bareWorkerCpuMsPerJob' },
  { key: 'redisCpuMsPerDelivery', label: 'CPU per delivery: Redis (whole server)', unit: 'ms', baseline: 'bareRedisCpuMsPerJob' },
  { key: 'sinkCpuMsPerDelivery', label: 'CPU per delivery: sink', unit: 'ms', baseline: 'bareSinkCpuMsPerJob' },
  { key: 'postgresCpuMsPerDelivery', label: 'CPU per delivery: PostgreSQL backends', unit: 'ms' },
  { key: 'apiCpuMsPerDelivery', label: 'CPU per delivery: api (relay)', unit: 'ms', baseline: 'bareProducerCpuMsPerJob' },
  { key: 'totalCpuMsPerDelivery', label: 'CPU per delivery: all of the above', unit: 'ms', baseline: 'bareTotalCpuMsPerJob' },
  { key: 'dbCommitsPerDelivery', label: 'PostgreSQL commits per delivery', unit: '' },
  { key: 'dbRowWritesPerDelivery', label: 'PostgreSQL row writes per delivery', unit: '' },
];

export function format(value: number, unit: FigureSpec['unit']): string {
  if (!Number.isFinite(value)) return String(value);
  const digits = unit === '/s' || unit === 'MiB' || unit === 'count' ? 0 : unit === 'ms' ? (Math.abs(value) < 1 ? 3 : Math.abs(value) < 10 ? 2 : 1) : 2;
  return `${value.toFixed(digits)}${unit === '' || unit === 'count' ? '' : unit === '×' ? '×' : ` ${unit}`}`;
}

export function passes(value: number, target: Target): boolean {
  return target.op === '>=' ? value >= target.value : value <= target.value;
}

/**
 * The figures as a plain-text table: figure, value, baseline, target, result. `quick`: the tiny
 * sizes of `--quick` (the labels name the full ones), which only check that the harness works:
 * no result is judged.
 */
export function renderTable(figures: Figures, quick = false): string {
  const rows: string[][] = [['figure', '', 'value', 'baseline', 'target', 'result']];
  for (const spec of FIGURES) {
    const value = figures[spec.key];
    if (value === undefined) continue;
    const baselineValue = spec.baseline === undefined ? undefined : figures[spec.baseline];
    const baseline = baselineValue === undefined ? '' : `${format(baselineValue, spec.unit)} (${spec.baseline})`;
    const target = spec.target ? `${spec.target.op === '>=' ? '≥' : '≤'} ${format(spec.target.value, spec.unit)}` : '';
    const result = !spec.target ? '' : quick ? 'n/a (quick)' : passes(value, spec.target) ? 'pass' : 'FAIL';
    rows.push([spec.key, spec.label, format(value, spec.unit), baseline, target, result]);
  }
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => [...row[column]!].length)));
  const line = (row: string[]) => row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd();
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}
