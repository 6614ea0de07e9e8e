import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadConfig, redact, WORKER_THREAD_POOL_SIZE } from './config.js';
import { assertDatabaseReachable, createDb } from './db/knex.js';
import { ensureDatabase, migrateLatest, newerThanThisCode } from './db/migrate.js';
import { checkRedis } from './delivery/queue.js';
import { exitOnStartupError, StartupError, stopSignals, unreachable } from './lifecycle.js';

/** Longer than a delivery's timeout plus saving it (see the worker's drain); then the children are killed. */
const STOP_DEADLINE_MS = 60_000;

/**
 * `npm start`: everything a laptop needs. Creates the database when missing,
 * migrates, checks Redis, then runs one api and one worker process until Ctrl-C
 * (a second Ctrl-C, a second or more after the first, stops them at once).
 */
async function main(): Promise<void> {
  const config = loadConfig();
  if (await ensureDatabase(config.databaseUrl)) say('created the database named in DATABASE_URL');
  const db = createDb(config.databaseUrl, { poolMax: 2 });
  try {
    await assertDatabaseReachable(db, config.databaseUrl);
    const { applied, unknown } = await migrateLatest(db);
    if (applied.length > 0) say(`applied ${applied.length} migration(s)`);
    if (unknown.length > 0) say(`${newerThanThisCode(unknown)}; starting on it as it is`);
  } finally {
    await db.destroy();
  }
  const redis = await checkRedis(config);
  if (!redis.reachable) throw explainRedisError(config.redisUrl, redis.cause);

  const api = spawn('../src/api.ts');
  const children = [api, spawn('../workers/delivery-worker.ts', { UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE || String(WORKER_THREAD_POOL_SIZE) })];
  // Said once the api listens, with the port it got: not before (the port may be taken) nor PORT=0 as it is.
  api.on('message', (message: { listening?: unknown }) => {
    if (typeof message?.listening === 'string') say(`api on ${message.listening}  ·  dashboard ${message.listening}/  ·  Ctrl-C stops`);
  });

  let stopping = false;
  const killAll = () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const stopAll = () => {
    if (stopping) return;
    stopping = true;
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
    // A drain that hangs (say, on a Redis stopped first) ends here at the latest.
    setTimeout(() => {
      say(`still stopping after ${STOP_DEADLINE_MS / 1000} s: killing`);
      killAll();
    }, STOP_DEADLINE_MS).unref();
  };
  const signals = stopSignals();
  const onSignal = () => {
    const seen = signals();
    if (!stopping) return stopAll();
    if (seen === 'relayed') return; // the same Ctrl-C, relayed by npm or tsx
    say('stopping now, without waiting for deliveries in flight');
    killAll();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const codes = await Promise.all(
    children.map(
      (child) =>
        new Promise<number>((resolve) =>
          child.on('exit', (code, signal) => {
            // One process gone means the product is down: stop the other too.
            if (!stopping) say(`${child.spawnargs.at(-1)} exited (${signal ?? code}); stopping`);
            stopAll();
            resolve(code ?? 1);
          }),
        ),
    ),
  );
  process.exit(codes.every((c) => c === 0) ? 0 : 1);
}

/** `env`: variables to add, such as the worker's thread pool size (see docker/entrypoint.sh), which must be set before it starts. */
function spawn(entry: string, env: Record<string, string> = {}): ChildProcess {
  // Same node flags (the tsx loader under `npm start`). Detached: Ctrl-C reaches only this
  // process, which passes one SIGTERM on, so children drain once instead of dying on a second signal.
  return fork(fileURLToPath(new URL(entry, import.meta.url)), [], { stdio: 'inherit', execArgv: process.execArgv, detached: true, env: { ...process.env, ...env } });
}

/**
 * A Redis that answers but refuses REDIS_URL's login: no password given where one is needed
 * (NOAUTH, perhaps in "Ready check failed: NOAUTH …") or a wrong user or password (WRONGPASS).
 * "Start it" would mislead there.
 */
function explainRedisError(url: string, err: unknown): StartupError {
  const message = (err as Error).message ?? String(err);
  if (/\b(NOAUTH|WRONGPASS)\b/.test(message)) return new StartupError(`Redis at ${redact(url)} refused the login (${message}): check the password (and user name) in REDIS_URL`);
  return unreachable('Redis', url, err);
}

function say(line: string): void {
  process.stdout.write(`mozhno: ${line}\n`);
}

main().catch((err: unknown) => exitOnStartupError(err, 'failed to start'));
