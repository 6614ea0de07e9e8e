import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, redact, redisDatabase } from '../src/config.js';
import { testCa } from './support/sink.js';

const dirs: string[] = [];
/** A temporary directory, removed when the file is done. */
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mozhno-config-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** The ConfigError that loading `name=value` throws (failing the test if it throws none). */
function refusal(name: string, value: string): ConfigError {
  try {
    loadConfig({ [name]: value });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`${name}=${value} was accepted`);
}

describe('loadConfig', () => {
  it('has a working default for every variable of SPEC §8', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      databaseUrl: 'postgres://localhost:5432/mozhno',
      redisUrl: 'redis://127.0.0.1:6379',
      port: 8080,
      webhookTimeoutMs: 30000,
      webhookAllowedCidrs: [],
      webhookCa: null,
      workerConcurrency: 200,
      deliveryRetention: 100,
      eventRetentionDays: null,
      webhookMaxInFlight: 8,
      webhookMaxBacklog: 10000,
      planLimits: { free: 3, pro: 20, enterprise: 100 },
      adminUser: 'admin',
      adminPassword: null,
      queuePrefix: 'mozhno',
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('reads every variable', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'ca.pem'), testCa());
    const config = loadConfig({
      DATABASE_URL: 'postgresql://u:p@db:5432/x',
      REDIS_URL: 'rediss://cache:6380/2',
      PORT: '9000',
      WEBHOOK_TIMEOUT_MS: '5000',
      WEBHOOK_ALLOWED_CIDRS: '10.1.0.0/16, 127.0.0.0/8',
      WEBHOOK_CA_FILE: join(dir, 'ca.pem'),
      WORKER_CONCURRENCY: '50',
      DELIVERY_RETENTION: '10',
      EVENT_RETENTION_DAYS: '90',
      WEBHOOK_MAX_IN_FLIGHT: '2',
      WEBHOOK_MAX_BACKLOG: '500',
      PLAN_LIMITS: '{"free":1,"enterprise":1000}',
      ADMIN_USER: 'ops',
      ADMIN_PASSWORD: 'long enough s3cret',
      QUEUE_PREFIX: '{mozhno}',
    });
    expect(config).toMatchObject({
      databaseUrl: 'postgresql://u:p@db:5432/x',
      redisUrl: 'rediss://cache:6380/2',
      port: 9000,
      webhookTimeoutMs: 5000,
      workerConcurrency: 50,
      deliveryRetention: 10,
      eventRetentionDays: 90,
      webhookMaxInFlight: 2,
      webhookMaxBacklog: 500,
      planLimits: { free: 1, pro: 20, enterprise: 1000 },
      adminUser: 'ops',
      adminPassword: 'long enough s3cret',
      queuePrefix: '{mozhno}',
    });
    expect(config.webhookAllowedCidrs).toHaveLength(2);
    expect(config.webhookCa).toContain('BEGIN CERTIFICATE');
  });

  it.each([
    ['PORT', 'eighty', /PORT: must be a whole number/],
    ['PORT', '70000', /PORT: must be between 0 and 65535/],
    ['WEBHOOK_TIMEOUT_MS', '-1', /WEBHOOK_TIMEOUT_MS: must be a whole number/],
    ['WEBHOOK_TIMEOUT_MS', '1.5', /WEBHOOK_TIMEOUT_MS/],
    ['WORKER_CONCURRENCY', '0', /WORKER_CONCURRENCY: must be between 1/],
    ['DELIVERY_RETENTION', 'lots', /DELIVERY_RETENTION/],
    ['WEBHOOK_MAX_IN_FLIGHT', '0', /WEBHOOK_MAX_IN_FLIGHT/],
    ['WEBHOOK_MAX_BACKLOG', '0', /WEBHOOK_MAX_BACKLOG: must be between 1/],
    ['EVENT_RETENTION_DAYS', '0', /EVENT_RETENTION_DAYS: must be between 1 and 36500/],
    ['EVENT_RETENTION_DAYS', '30d', /EVENT_RETENTION_DAYS: must be a whole number/],
    ['DATABASE_URL', 'mysql://localhost/x', /DATABASE_URL: must start with postgres/],
    ['DATABASE_URL', 'not a url', /DATABASE_URL: not a URL/],
    ['REDIS_URL', 'http://localhost', /REDIS_URL: must start with redis/],
    ['WEBHOOK_ALLOWED_CIDRS', '10.0.0.0/33', /WEBHOOK_ALLOWED_CIDRS/],
    ['WEBHOOK_CA_FILE', '/nonexistent/ca.pem', /WEBHOOK_CA_FILE: cannot read/],
    ['PLAN_LIMITS', '{"free":"three"}', /PLAN_LIMITS: limit of "free"/],
    ['PLAN_LIMITS', '{"gold":3}', /PLAN_LIMITS: unknown plan "gold"/],
    ['PLAN_LIMITS', '[1,2]', /PLAN_LIMITS: must be a JSON object/],
    ['QUEUE_PREFIX', 'has space', /QUEUE_PREFIX/],
    ['LOG_LEVEL', 'loud', /LOG_LEVEL/],
    ['ADMIN_PASSWORD', 'hunter2', /^ADMIN_PASSWORD: must be at least 12 characters \(it guards Bull Board/],
  ])('refuses %s=%s naming the variable', (name, value, message) => {
    const error = refusal(name, value);
    expect((error as ConfigError).variable).toBe(name);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain('\n');
  });

  it.each([
    ['redis://127.0.0.1:6379/abc', /REDIS_URL: the path after the host is the database number, as in redis:\/\/host:6379\/2, or nothing for 0; got redis:\/\/127\.0\.0\.1:6379\/abc$/],
    ['redis://127.0.0.1:6379/-1', /REDIS_URL: the path after the host is the database number/],
    ['redis://127.0.0.1:6379/1/2', /REDIS_URL: the path after the host is the database number/],
    ['redis://127.0.0.1:6379/2/', /REDIS_URL: the path after the host is the database number/],
    ['redis://127.0.0.1:6379/1.5', /REDIS_URL: the path after the host is the database number/],
    ['redis://127.0.0.1:6379?db=abc', /REDIS_URL: \?db= must be a database number, as in \?db=2, got "abc"$/],
    ['redis://127.0.0.1:6379/?db=', /REDIS_URL: \?db= must be a database number/],
  ])('refuses REDIS_URL=%s: after the host comes a database number or nothing', (value, message) => {
    const error = refusal('REDIS_URL', value);
    expect(error.variable).toBe('REDIS_URL');
    expect(error.message).toMatch(message);
  });

  it.each([
    ['redis://127.0.0.1:6379', 0],
    ['redis://127.0.0.1:6379/', 0],
    ['redis://127.0.0.1:6379/0', 0],
    ['redis://127.0.0.1:6379/15', 15],
    ['rediss://:secret@cache:6380/2', 2],
    ['redis://127.0.0.1:6379?db=3', 3],
    ['redis://127.0.0.1:6379/4?db=3', 4], // the path wins, as in ioredis
  ])('accepts REDIS_URL=%s, database %i', (value, db) => {
    expect(loadConfig({ REDIS_URL: value }).redisUrl).toBe(value);
    expect(redisDatabase(value)).toBe(db);
  });

  it('refuses a database other than 0 on a Redis Cluster, which has no other and is never sent a SELECT', () => {
    for (const value of ['redis://node:7000/1', 'redis://node:7000?db=2']) {
      let error: unknown;
      try {
        loadConfig({ REDIS_URL: value, REDIS_CLUSTER: 'true', QUEUE_PREFIX: '{mozhno}' });
      } catch (err) {
        error = err;
      }
      expect(error, value).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).variable).toBe('REDIS_URL');
      expect((error as Error).message).toMatch(/^REDIS_URL: names database [12], but a Redis Cluster \(REDIS_CLUSTER true\) has only database 0: leave the number out$/);
    }
    expect(loadConfig({ REDIS_URL: 'redis://node:7000/0', REDIS_CLUSTER: 'true', QUEUE_PREFIX: '{mozhno}' }).redisCluster).toBe(true);
  });

  it('refuses a WEBHOOK_CA_FILE whose certificates cannot be read, which TLS would skip without a word', () => {
    const dir = tempDir();
    const [body] = testCa().split('-----END CERTIFICATE-----');
    const files = {
      'garbled.pem': '-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n',
      'truncated.pem': `${body!.slice(0, 200)}\n-----END CERTIFICATE-----\n`,
      'no-end.pem': `${testCa()}\n-----BEGIN CERTIFICATE-----\nMIIB\n`,
      'marker-only.pem': '-----BEGIN CERTIFICATE-----\n',
    };
    for (const [name, text] of Object.entries(files)) {
      writeFileSync(join(dir, name), text);
      let error: unknown;
      try {
        loadConfig({ WEBHOOK_CA_FILE: join(dir, name) });
      } catch (err) {
        error = err;
      }
      expect(error, name).toBeInstanceOf(ConfigError);
      expect((error as Error).message, name).toMatch(/^WEBHOOK_CA_FILE: (certificate 1 in .* cannot be read|.* holds no PEM certificate, or one without its END line)/);
      expect((error as Error).message).not.toContain('\n');
    }
    writeFileSync(join(dir, 'two.pem'), `${testCa()}\n${testCa()}`);
    expect(loadConfig({ WEBHOOK_CA_FILE: join(dir, 'two.pem') }).webhookCa).toContain('BEGIN CERTIFICATE');
  });

  it('never puts a database password into its message', () => {
    expect(() => loadConfig({ DATABASE_URL: 'mysql://me:hunter2@db/x' })).toThrow(/\*\*\*\*/);
    expect(() => loadConfig({ DATABASE_URL: 'mysql://me:hunter2@db/x' })).not.toThrow(/hunter2/);
  });

  it.each([
    ['DATABASE_URL', 'postgres://root:hunt/er2@127.0.0.1:5432/db', /not a URL \(not shown/], // a "/" in the password, left as it is
    ['DATABASE_URL', 'root:hunter2@127.0.0.1:5432/db', /must start with postgres:\/\//], // the scheme left off
    ['DATABASE_URL', 'postgres:root:hunter2@127.0.0.1:5432/db', /must start with postgres:\/\//],
    ['DATABASE_URL', 'postgres:/root:hunter2@127.0.0.1:5432/db', /must start with postgres:\/\//],
    ['DATABASE_URL', 'postgres://root:1234/hunter2@127.0.0.1:5432/db', /holds an "@" after the host: write a "\/" in the password as %2F/],
    ['DATABASE_URL', 'postgres:///root:hunter2@127.0.0.1:5432/db', /holds an "@" after the host/],
    ['REDIS_URL', 'redis://:hunt/er2@127.0.0.1:6379', /not a URL \(not shown/],
    ['REDIS_URL', ':hunter2@127.0.0.1:6379', /REDIS_URL/],
    ['REDIS_URL', 'redis:/:hunter2@127.0.0.1:6379', /must start with redis:\/\//],
  ])('refuses a mistyped %s without showing its password: %s', (name, value, message) => {
    const error = refusal(name, value);
    expect((error as ConfigError).message).toMatch(message);
    expect((error as ConfigError).message).not.toMatch(/hunt/);
  });

  it('shows a connection URL it accepts without any password, wherever one was put', () => {
    expect(redact('postgres://me:hunter2@127.0.0.1:1/mozhno')).toBe('postgres://me:****@127.0.0.1:1/mozhno');
    expect(redact('postgres://root@127.0.0.1:5439/db?password=hunter2')).toBe('postgres://root@127.0.0.1:5439/db?…');
    expect(redact('redis://127.0.0.1:6379/?password=hunter2')).toBe('redis://127.0.0.1:6379/?…');
    expect(redact('redis://:hunter2@127.0.0.1:1')).toBe('redis://:****@127.0.0.1:1');
    expect(redact('redis://127.0.0.1:1')).toBe('redis://127.0.0.1:1');
    // Where a socket form connects is shown; any other parameter is not.
    expect(redact('postgresql:///mozhno?host=/var/run/postgresql')).toBe('postgresql:///mozhno?host=/var/run/postgresql');
    expect(redact('postgresql:///mozhno?host=/tmp&password=hunter2&user=me')).toBe('postgresql:///mozhno?host=/tmp&user=me&…');
    expect(redact('postgres://localhost/odd%2Fname')).toBe('postgres://localhost/…');
    expect(redact('not a url hunter2')).not.toMatch(/hunter2/);
  });
});
