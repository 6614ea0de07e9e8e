import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { startApiServer, type ApiServer, type ApiServerOptions } from '../../src/api-server.js';
import { loadConfig, type Config } from '../../src/config.js';
import { createLogger, type Logger } from '../../src/logger.js';
import { bootstrap, type BootstrapResult } from '../../src/projects/bootstrap.js';
import type { Plan } from '../../src/config.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { REDIS_URL } from './env.js';

export interface TestApi {
  server: ApiServer;
  config: Readonly<Config>;
  database: TestDatabase;
  /** A new project with its user and token. */
  project(options?: { plan?: Plan; email?: string; name?: string }): Promise<Client & BootstrapResult>;
  /** A client with any Authorization header (or none), for authentication tests. */
  client(authorization?: string): Client;
  close(): Promise<void>;
}

export interface Answer<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export interface Client {
  get<T = any>(path: string): Promise<Answer<T>>;
  post<T = any>(path: string, body?: unknown): Promise<Answer<T>>;
  put<T = any>(path: string, body?: unknown): Promise<Answer<T>>;
  delete<T = any>(path: string): Promise<Answer<T>>;
  /** A raw request body, for malformed-JSON and size tests. */
  send<T = any>(method: string, path: string, raw: string | Buffer, headers?: Record<string, string>): Promise<Answer<T>>;
}

/** This file's api: own database, own queue prefix, on an ephemeral port. */
export async function startTestApi(env: Record<string, string> = {}, options: { log?: Logger; server?: ApiServerOptions } = {}): Promise<TestApi> {
  const database = await createTestDatabase();
  const config = loadConfig({
    DATABASE_URL: database.url,
    REDIS_URL,
    PORT: '0',
    QUEUE_PREFIX: `mozhno-test-${randomBytes(4).toString('hex')}`,
    WEBHOOK_ALLOWED_CIDRS: '127.0.0.0/8',
    LOG_LEVEL: 'silent',
    ...env,
  });
  const server = await startApiServer(config, options.log ?? createLogger(config.logLevel), { host: '127.0.0.1', ...options.server });
  let projects = 0;
  const makeClient = (authorization?: string) => createClient(server.url, authorization);
  return {
    server,
    config,
    database,
    async project(options = {}) {
      projects += 1;
      const result = await bootstrap(server.db, {
        project: `project ${projects}`,
        email: options.email ?? `user${projects}@example.com`,
        name: options.name ?? `User ${projects}`,
        plan: options.plan ?? 'free',
      });
      return { ...result, ...makeClient(`Bearer ${result.token}`) };
    },
    client: makeClient,
    async close() {
      // The database goes however the server's stop ends: a stop that failed left it behind.
      try {
        await server.close();
      } finally {
        await database.drop();
        if (!config.redisCluster) await deleteQueueKeys(config.redisUrl, config.queuePrefix);
      }
    },
  };
}

function createClient(baseUrl: string, authorization?: string): Client {
  const request = async (method: string, path: string, body: string | Buffer | undefined, extra: Record<string, string> = {}) => {
    const headers: Record<string, string> = { ...extra };
    if (authorization !== undefined) headers.authorization = authorization;
    if (body !== undefined && body !== '' && !('content-type' in headers)) headers['content-type'] = 'application/json';
    const response = await fetch(`${baseUrl}${path}`, { method, headers, body: body === '' ? undefined : body });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: response.status, body: parsed as any, headers: response.headers };
  };
  const json = (body: unknown) => (body === undefined ? undefined : JSON.stringify(body));
  return {
    get: (path) => request('GET', path, undefined),
    post: (path, body) => request('POST', path, json(body)),
    put: (path, body) => request('PUT', path, json(body)),
    delete: (path) => request('DELETE', path, undefined),
    send: (method, path, raw, headers) => request(method, path, raw, headers),
  };
}

/** Leaves nothing behind in the shared Redis: every key under this file's queue prefix. */
export async function deleteQueueKeys(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, retryStrategy: () => null });
  redis.on('error', () => undefined); // a test that stopped its Redis on purpose
  try {
    const stream = redis.scanStream({ match: `${prefix}:*`, count: 500 });
    for await (const keys of stream as AsyncIterable<string[]>) if (keys.length > 0) await redis.unlink(...keys);
  } catch {
    // that Redis is gone: nothing to clean
  } finally {
    redis.disconnect();
  }
}
