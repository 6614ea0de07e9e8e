import { readFileSync } from 'node:fs';
import { now } from '../support/clock.js';
import { announceReady, answerRequests, exitWithParent } from '../support/ipc.js';
import { Poster } from '../support/poster.js';

/**
 * Baseline "raw POST": `concurrency` loops POSTing the same body to the sink with
 * undici, nothing else. In a process of its own, like a worker. The ceiling of the
 * product's throughput on this machine.
 */
const poster = new Poster(readFileSync(process.env.BENCH_CA_FILE!, 'utf8'));

answerRequests(async (request) => {
  if (request.type !== 'run') throw new Error(`unknown request "${request.type}"`);
  const total = Number(request.total);
  const concurrency = Number(request.concurrency);
  const url = String(request.url);
  const body = String(request.body);
  let next = 0;
  let failures = 0;
  const loop = async () => {
    while (next < total) {
      const n = next++;
      const status = await poster.post(url, body, `msg_raw_${n}`);
      if (status !== 200) failures += 1;
    }
  };
  const started = now();
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, loop));
  return { elapsedMs: now() - started, failures };
});

exitWithParent(() => poster.close());
announceReady();
