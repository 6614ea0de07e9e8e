import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { DEFAULT_WORKER_CONCURRENCY } from '../src/config.js';
import { apiOverheadScenario } from './scenarios/api-overhead.js';
import { backlogScenario } from './scenarios/backlog.js';
import { bareBullmqScenario } from './scenarios/bare-bullmq.js';
import { isolationScenario } from './scenarios/isolation.js';
import { latencyScenario } from './scenarios/latency.js';
import { rawPostScenario } from './scenarios/raw-post.js';
import { allNotes, progress, type Figures, type Scenario } from './scenarios/scenario.js';
import { scaleScenario, throughputScenario } from './scenarios/throughput.js';
import { Bench, cleanUp, type BenchSettings } from './support/bench.js';
import { loggedProblems } from './support/children.js';
import { now } from './support/clock.js';
import { renderTable } from './support/report.js';
import { DEFAULT_SIZES, QUICK_SIZES } from './support/sizes.js';
import { median } from './support/stats.js';

const SCENARIOS: Scenario[] = [rawPostScenario, bareBullmqScenario, throughputScenario, latencyScenario, apiOverheadScenario, isolationScenario, backlogScenario, scaleScenario];

const USAGE = `usage: npm run bench -- [--json] [--quick] [--runs N] [--only ${SCENARIOS.map((s) => s.name).join(',')}] [--cpu-prof DIR] [--perf-map]
  --json       print one JSON object with every figure as the last line
  --quick      tiny sizes: checks the harness works, measures nothing worth reading
  --runs N     run every scenario N times, round-robin, and report the medians (default 1)
  --only LIST  run only these scenarios (comma-separated)
  --cpu-prof   write V8 CPU profiles of the api, worker and bare BullMQ worker processes into DIR
  --perf-map   start those processes with --perf-basic-prof, so \`perf record -a -g\` names their JavaScript frames
environment: BENCH_WORKERS (worker processes, default 1), WORKER_CONCURRENCY (default ${DEFAULT_WORKER_CONCURRENCY}, the product's),
  BENCH_DATABASE_SERVER (default postgres://127.0.0.1:5432), BENCH_REDIS_URL (default redis://127.0.0.1:6379)`;

interface Options {
  json: boolean;
  quick: boolean;
  runs: number;
  scenarios: Scenario[];
  cpuProfDir: string | null;
  perfMap: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      runs: { type: 'string', default: '1' },
      only: { type: 'string' },
      'cpu-prof': { type: 'string' },
      'perf-map': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs takes a whole number ≥ 1');
  const names = values.only?.split(',').map((name) => name.trim()).filter(Boolean);
  const unknown = names?.filter((name) => !SCENARIOS.some((s) => s.name === name)) ?? [];
  if (unknown.length > 0) throw new Error(`unknown scenario ${unknown.join(', ')} (scenarios: ${SCENARIOS.map((s) => s.name).join(', ')})`);
  return {
    json: values.json,
    quick: values.quick,
    runs,
    scenarios: names ? SCENARIOS.filter((s) => names.includes(s.name)) : SCENARIOS,
    cpuProfDir: values['cpu-prof'] ?? null,
    perfMap: values['perf-map'],
  };
}

function positiveInteger(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a whole number ≥ 1, got "${text}"`);
  return value;
}

async function main(): Promise<void> {
  let options: Options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    console.error(`bench: ${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  const settings: BenchSettings = {
    sizes: options.quick ? QUICK_SIZES : DEFAULT_SIZES,
    workers: positiveInteger('BENCH_WORKERS', 1),
    concurrency: positiveInteger('WORKER_CONCURRENCY', DEFAULT_WORKER_CONCURRENCY),
    nodeArgs: [...(options.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`] : []), ...(options.perfMap ? ['--perf-basic-prof'] : [])],
  };
  let interrupted = false;
  const interrupt = () => {
    if (interrupted) return;
    interrupted = true;
    progress('interrupted: cleaning up');
    void cleanUp().finally(() => process.exit(130));
  };
  process.on('SIGINT', interrupt);
  process.on('SIGTERM', interrupt);
  // Whatever breaks, the database, the Redis keys and the children still go; once interrupted, stray errors are expected.
  const crash = (err: unknown) => {
    if (interrupted) return;
    interrupted = true;
    console.error(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    void cleanUp().finally(() => process.exit(1));
  };
  process.on('uncaughtException', crash);
  process.on('unhandledRejection', crash);

  const started = now();
  const bench = await Bench.create(settings);
  const samples = new Map<string, number[]>();
  // Runs go round the scenarios (all of run 1, then all of run 2, …) rather than repeating one scenario,
  // so a baseline and the product it is compared to are measured minutes apart at most, and a ratio is
  // taken within each run: a VM whose speed drifts moves both sides of it.
  for (let run = 1; run <= options.runs; run++) {
    const round: Figures = {};
    for (const scenario of options.scenarios) {
      progress(`${scenario.name}${options.runs > 1 ? ` (run ${run} of ${options.runs})` : ''}: ${scenario.title}`);
      Object.assign(round, await scenario.run(bench));
      if (scenario === throughputScenario && round.bareBullmqPerSec !== undefined) {
        // The baseline again right after the product, so it brackets it in time: the product is
        // compared to the mean of the runs just before and just after it.
        progress(`bare again (run ${run}): the baseline after the product`);
        const after = await bareBullmqScenario.run(bench);
        round.bareBullmqPerSec = (round.bareBullmqPerSec + after.bareBullmqPerSec!) / 2;
      }
    }
    if (round.deliveriesPerSec !== undefined && round.bareBullmqPerSec !== undefined) {
      round.ratioVsBareBullmq = round.deliveriesPerSec / round.bareBullmqPerSec;
      if (options.runs > 1) progress(`run ${run}: ratioVsBareBullmq ${round.ratioVsBareBullmq.toFixed(2)}`);
    }
    for (const [key, value] of Object.entries(round)) samples.set(key, [...(samples.get(key) ?? []), value]);
  }
  await cleanUp();

  const figures: Figures = Object.fromEntries([...samples].map(([key, values]) => [key, median(values)]));
  const { throughput } = settings.sizes;
  console.log(
    `mozhno bench — ${cpus().length} cores, node ${process.version}, ${settings.workers} worker process(es) × concurrency ${settings.concurrency}, ` +
      `${throughput.events} events × ${throughput.integrations} integrations per throughput run, ` +
      `${options.runs === 1 ? 'one run' : `median of ${options.runs} runs`}${options.quick ? ', QUICK sizes (the labels name the full ones; nothing is judged)' : ''}, ${((now() - started) / 1000).toFixed(0)} s`,
  );
  console.log(renderTable(figures, options.quick));
  const notes = allNotes();
  const logged = loggedProblems();
  if (notes.length > 0) console.log(`\nnotes:\n${notes.map((n) => `- ${n}`).join('\n')}`);
  if (logged.length > 0) {
    console.log('\nlogged by the processes (warn level and above):');
    for (const problem of logged) console.log(`- ${problem.count}× ${problem.what}${problem.example ? ` — ${problem.example}` : ''}`);
  }
  if (options.cpuProfDir) console.log(`\nCPU profiles of the api and worker processes: ${options.cpuProfDir}`);
  if (options.json) {
    const meta = { quick: options.quick, runs: options.runs, workers: settings.workers, concurrency: settings.concurrency, sizes: settings.sizes, notes, logged };
    console.log(JSON.stringify({ ...figures, meta }));
  }
}

main().then(
  () => process.exit(0),
  async (err: unknown) => {
    console.error(`bench failed: ${err instanceof Error ? err.message : String(err)}`);
    await cleanUp().catch(() => undefined);
    process.exit(1);
  },
);
