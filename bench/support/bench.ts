import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { Knex } from 'knex';
import pg from 'pg';
import { createDb, pgConnection } from '../../src/db/knex.js';
import { ensureDatabase, migrateLatest } from '../../src/db/migrate.js';
import { bootstrap } from '../../src/projects/bootstrap.js';
import { makeTestCertificates } from '../../test/support/certificates.js';
import { stopAllChildren } from './children.js';
import { Sink } from './sink.js';
import type { Sizes } from './sizes.js';
import { BENCH_USER } from './workload.js';

export interface BenchSettings {
  sizes: Sizes;
  /** BENCH_WORKERS: worker processes of the product in every scenario but `scale`. */
  workers: number;
  /** WORKER_CONCURRENCY: the product's, and the baselines'. */
  concurrency: number;
  /** Node flags for the api and worker processes (--cpu-prof). */
  nodeArgs: string[];
}

export interface BenchProject {
  projectId: number;
  userId: number;
  token: string;
}

const DATABASE_SERVER = (process.env.BENCH_DATABASE_SERVER ?? 'postgres://127.0.0.1:5432').replace(/\/$/, '');
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * Everything a run owns, made once and removed at the end even on failure or
 * Ctrl-C: its database (`mozhno_bench_<random>`, migrated), its Redis keys (all
 * under `mzbench-<random>-*`), a test CA, and the HTTPS sink.
 */
export class Bench {
  readonly id = randomBytes(4).toString('hex');
  readonly databaseName = `mozhno_bench_${this.id}`;
  readonly databaseUrl = `${DATABASE_SERVER}/${this.databaseName}`;
  readonly redisUrl = REDIS_URL;
  readonly redis: Redis;
  readonly db: Knex;
  readonly tlsDir: string;
  private sinkHandle: Sink | null = null;
  private prefixes = 0;
  private projects = 0;

  private constructor(readonly settings: BenchSettings) {
    this.tlsDir = mkdtempSync(join(tmpdir(), 'mozhno-bench-tls-'));
    this.redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 3 });
    this.db = createDb(this.databaseUrl, { poolMax: 4 });
  }

  static async create(settings: BenchSettings): Promise<Bench> {
    const bench = new Bench(settings);
    cleanups.push(() => bench.remove());
    makeTestCertificates(bench.tlsDir);
    await ensureDatabase(bench.databaseUrl);
    await migrateLatest(bench.db);
    bench.sinkHandle = await Sink.start({ ...process.env, BENCH_TLS_DIR: bench.tlsDir });
    return bench;
  }

  get sink(): Sink {
    if (!this.sinkHandle) throw new Error('the sink is not started');
    return this.sinkHandle;
  }

  get caFile(): string {
    return join(this.tlsDir, 'ca.pem');
  }

  /** A queue prefix of this run, new for every stack so no stack sees another's jobs. */
  newQueuePrefix(): string {
    this.prefixes += 1;
    return `mzbench-${this.id}-${this.prefixes}`;
  }

  /** A new enterprise project with its user and token, as `npm run cli -- bootstrap` makes one. */
  async project(label: string): Promise<BenchProject> {
    this.projects += 1;
    const result = await bootstrap(this.db, { project: `bench ${label} ${this.projects}`, email: BENCH_USER.email, name: BENCH_USER.name, plan: 'enterprise' });
    return { projectId: result.projectId, userId: result.userId, token: result.token };
  }

  /** Stops a project's deliveries for good, so events it may still get cannot reach the sink of a later scenario. */
  async retire(project: BenchProject): Promise<void> {
    await this.db('integrations').where('project_id', project.projectId).update({ enabled: false });
  }

  /** Deletes the keys of one queue prefix (or, without one, of the whole run). */
  async deleteKeys(prefix = `mzbench-${this.id}-`): Promise<void> {
    const stream = this.redis.scanStream({ match: `${prefix}*`, count: 1000 });
    for await (const keys of stream as AsyncIterable<string[]>) {
      if (keys.length > 0) await this.redis.unlink(...keys);
    }
  }

  private async remove(): Promise<void> {
    await stopAllChildren();
    await this.deleteKeys().catch((err: unknown) => console.error(`bench: could not delete Redis keys: ${(err as Error).message}`));
    this.redis.disconnect();
    await this.db.destroy().catch(() => undefined);
    await dropDatabase(this.databaseName).catch((err: unknown) => console.error(`bench: could not drop ${this.databaseName}: ${(err as Error).message}`));
    rmSync(this.tlsDir, { recursive: true, force: true });
  }
}

async function dropDatabase(name: string): Promise<void> {
  const admin = new pg.Client(pgConnection(`${DATABASE_SERVER}/postgres`));
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

const cleanups: Array<() => Promise<void>> = [];
let cleaning: Promise<void> | null = null;

/** Runs every cleanup once, however many times it is asked for (normal end, error, Ctrl-C). */
export function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  })();
  return cleaning;
}
