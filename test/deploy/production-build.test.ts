import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, cpSync, mkdtempSync, readdirSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pgConnection } from '../../src/db/knex.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { REDIS_URL, SERVER_URL } from '../support/env.js';
import { adminQuery } from '../support/postgres-admin.js';
import { freePort } from '../support/ports.js';

/**
 * The processes of the image, run as the image runs them: compiled by tsc (as
 * `npm run build`), the dashboard files copied beside dist/src/dashboard/routes.js
 * (as the Dockerfile does), started through docker/entrypoint.sh with node alone —
 * no tsx, no loader, no test environment.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ENTRYPOINT = join(ROOT, 'docker/entrypoint.sh');
const DASHBOARD_FILES = join(ROOT, 'src/dashboard/public');
const run = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Stands for /app of the image: package.json, dist/, node_modules. */
let app = '';

beforeAll(async () => {
  app = mkdtempSync(join(tmpdir(), 'mozhno-app-'));
  try {
    await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(app, 'dist')], {
      cwd: ROOT,
      timeout: 170_000,
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (err) {
    const { stdout = '', stderr = '', message } = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`the build fails, so would the image's \`npm run build\`:\n${(stdout + stderr || message).slice(0, 4000)}`);
  }
  cpSync(DASHBOARD_FILES, join(app, 'dist/src/dashboard/public'), { recursive: true });
  // "type": "module" makes dist/*.js ES modules; the version goes into User-Agent.
  copyFileSync(join(ROOT, 'package.json'), join(app, 'package.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(app, 'node_modules'), 'dir');
}, 180_000);

afterAll(() => {
  if (!app) return;
  unlinkSync(join(app, 'node_modules')); // the link only, never what it points at
  rmSync(app, { recursive: true, force: true });
});

interface Running {
  child: ChildProcess;
  stdout(): string;
  output(): string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<Running>();

/** `docker run mozhno <role> [args]`: entrypoint.sh from /app with the container's environment. */
function start(role: string, env: Record<string, string>, args: string[] = []): Running {
  const child = spawn('sh', [ENTRYPOINT, role, ...args], { cwd: app, env: imageEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    output += chunk.toString();
  });
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const process_: Running = { child, stdout: () => stdout, output: () => output, exit };
  running.add(process_);
  void exit.then(() => running.delete(process_));
  return process_;
}

/** What a container has: a PATH, a home, NODE_ENV — and none of this test process's NODE_OPTIONS or loaders. */
function imageEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: Record<string, string> = { PATH: `${dirname(process.execPath)}:${process.env.PATH ?? '/usr/bin:/bin'}`, NODE_ENV: 'production' };
  for (const name of ['HOME', 'USER', 'PGUSER', 'LANG', 'TZ']) {
    const value = process.env[name];
    if (value) env[name] = value;
  }
  return { ...env, LOG_LEVEL: 'info', ...extra };
}

async function runToEnd(role: string, env: Record<string, string>, args: string[] = []): Promise<{ code: number | null; stdout: string; output: string }> {
  const proc = start(role, env, args);
  const result = await Promise.race([proc.exit, sleep(60_000).then(() => null)]);
  if (!result) {
    proc.child.kill('SIGKILL');
    throw new Error(`${role} did not finish within 60 s:\n${proc.output()}`);
  }
  return { code: result.code, stdout: proc.stdout(), output: proc.output() };
}

/** SIGTERM, as `docker stop` and the kubelet send it; resolves with how the process ended. */
async function terminate(proc: Running): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  proc.child.kill('SIGTERM');
  const result = await Promise.race([proc.exit, sleep(15_000).then(() => null)]);
  if (!result) {
    proc.child.kill('SIGKILL');
    throw new Error(`no exit within 15 s of SIGTERM:\n${proc.output()}`);
  }
  return result;
}

interface Answer {
  status: number;
  type: string;
  body: string;
}

async function get(url: string, headers: Record<string, string> = {}): Promise<Answer> {
  const response = await fetch(url, { headers, signal: AbortSignal.timeout(5_000) });
  return { status: response.status, type: response.headers.get('content-type') ?? '', body: await response.text() };
}

/** Asks `url` until it answers 200, as a readiness probe would; fails with the process's output if it exits or never does. */
async function waitFor200(url: string, proc: Running, timeoutMs = 30_000): Promise<Answer> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  for (;;) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) throw new Error(`exited (${proc.child.exitCode ?? proc.child.signalCode}) before ${url} answered 200:\n${proc.output()}`);
    try {
      const answer = await get(url);
      if (answer.status === 200) return answer;
      last = `${answer.status} ${answer.body.slice(0, 300)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${url} never answered 200 (last: ${last}):\n${proc.output()}`);
    await sleep(200);
  }
}



afterEach(async () => {
  for (const proc of running) proc.child.kill('SIGKILL');
});

describe('the compiled api and worker, started as the image starts them', () => {
  const prefix = `mozhno-build-${randomBytes(4).toString('hex')}`;
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });

  afterAll(async () => {
    await db?.drop();
    const redis = new Redis(REDIS_URL);
    try {
      const keys = await redis.keys(`${prefix}:*`);
      if (keys.length > 0) await redis.del(...keys);
    } finally {
      redis.disconnect();
    }
  });

  it('api: ready against PostgreSQL and Redis, serves the dashboard, Bull Board and metrics, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const password = randomBytes(8).toString('hex');
    const api = start('api', { DATABASE_URL: db.url, REDIS_URL, QUEUE_PREFIX: prefix, PORT: String(port), ADMIN_PASSWORD: password });
    const base = `http://127.0.0.1:${port}`;

    const ready = await waitFor200(`${base}/readyz`, api);
    expect(ready.type).toMatch(/json/);
    expect((await get(`${base}/healthz`)).status).toBe(200);

    const page = await get(`${base}/`);
    expect(page.status, page.body.slice(0, 300)).toBe(200);
    expect(page.type).toMatch(/text\/html/);
    expect(page.body).toMatch(/<html/i);
    // Every static file of the dashboard made it into the build, not only the page.
    for (const file of readdirSync(DASHBOARD_FILES).filter((f) => f !== 'index.html')) {
      expect((await get(`${base}/dashboard/${file}`)).status, `/dashboard/${file}`).toBe(200);
    }

    const metrics = await get(`${base}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.type).toMatch(/text\/plain/);

    // Bull Board's UI comes from a production dependency: it must load without devDependencies' help.
    const board = await get(`${base}/admin/queues`, { authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}` });
    expect(board.status).toBe(200);
    expect((await get(`${base}/admin/queues`)).status, 'without credentials').toBe(401);

    expect(await terminate(api), api.output()).toEqual({ code: 0, signal: null });
  });

  it('worker: /healthz and /metrics on WORKER_METRICS_PORT, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const worker = start('worker', { DATABASE_URL: db.url, REDIS_URL, QUEUE_PREFIX: prefix, WORKER_METRICS_PORT: String(port), WORKER_CONCURRENCY: '5' });
    const base = `http://127.0.0.1:${port}`;

    await waitFor200(`${base}/healthz`, worker);
    const metrics = await get(`${base}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.type).toMatch(/text\/plain/);

    expect(await terminate(worker), worker.output()).toEqual({ code: 0, signal: null });
  });

  it('an invalid setting stops a process at start with one line naming the variable', async () => {
    const result = await runToEnd('worker', { DATABASE_URL: db.url, REDIS_URL, QUEUE_PREFIX: prefix, WORKER_CONCURRENCY: 'lots' });
    expect(result.code).toBe(1);
    expect(result.output).toMatch(/WORKER_CONCURRENCY/);
  });
});

describe('the compiled migrate and cli, against a new empty database', () => {
  const name = `mozhno_build_${randomBytes(5).toString('hex')}`;
  const url = `${SERVER_URL}/${name}`;
  const migrations = readdirSync(join(ROOT, 'migrations')).filter((file) => /^\d+_.+\.ts$/.test(file)).length;

  beforeAll(() => adminQuery(`CREATE DATABASE ${name}`));
  afterAll(() => adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));

  it('migrate applies every migration and exits 0; run again, it finds the database up to date', async () => {
    expect(migrations).toBeGreaterThan(0);
    const first = await runToEnd('migrate', { DATABASE_URL: url });
    expect(first.code, first.output).toBe(0);
    expect(first.stdout).toMatch(new RegExp(`applied ${migrations} migration`));

    const client = new pg.Client(pgConnection(url));
    await client.connect();
    try {
      const { rows } = await client.query<{ count: string }>('select count(*) from knex_migrations');
      expect(Number(rows[0]!.count)).toBe(migrations);
    } finally {
      await client.end();
    }

    const again = await runToEnd('migrate', { DATABASE_URL: url });
    expect(again.code, again.output).toBe(0);
    expect(again.stdout).toMatch(/up to date/);
  });

  it('cli bootstrap prints one JSON line with a token', async () => {
    const result = await runToEnd('cli', { DATABASE_URL: url, LOG_LEVEL: 'silent' }, ['bootstrap', '--project', 'Image', '--email', 'ops@example.com']);
    expect(result.code, result.output).toBe(0);
    const lines = result.stdout.split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ projectId: expect.any(Number), token: expect.stringMatching(/^mzk_/) });
  });
});
