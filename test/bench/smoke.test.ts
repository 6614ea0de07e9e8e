import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REDIS_URL, SERVER_URL } from '../support/env.js';

const run = promisify(execFile);

/**
 * Keeps the benchmark harness from rotting: a --quick run of two tiny scenarios must
 * finish and print its figures as JSON on the last line. It asserts that figures
 * exist and are positive, never what they are — timings are the bench's to report.
 */
describe('npm run bench', () => {
  it('runs quick scenarios and prints their figures as one JSON object on the last line', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick', '--json', '--only', 'raw,throughput'], {
      env: { ...process.env, BENCH_DATABASE_SERVER: SERVER_URL, BENCH_REDIS_URL: REDIS_URL, BENCH_WORKERS: '1' },
      timeout: 240_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    const lines = stdout.trim().split('\n');
    const figures = JSON.parse(lines.at(-1)!) as Record<string, unknown>;
    for (const key of ['rawPostPerSec', 'deliveriesPerSec', 'workerPeakRssMb', 'totalCpuMsPerDelivery']) {
      expect(figures[key], key).toBeGreaterThan(0);
    }
    // The readable table comes first, naming the same figures.
    expect(lines.slice(0, -1).join('\n')).toMatch(/deliveriesPerSec/);
    // Tiny sizes say nothing of the targets: no pass or FAIL is printed for them.
    expect(lines.find((line) => line.startsWith('workerPeakRssMb'))).toMatch(/n\/a \(quick\)$/);
  }, 300_000);
});
