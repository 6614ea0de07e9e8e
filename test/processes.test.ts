import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrationSource } from '../migrations/index.js';
import { WORKER_THREAD_POOL_SIZE } from '../src/config.js';
import { createDb, pgConnection } from '../src/db/knex.js';
import { bootstrap } from '../src/projects/bootstrap.js';
import { ApiKeyService } from '../src/apikeys/service.js';
import { EventLog } from '../src/events/event-log.js';
import { deleteQueueKeys } from './support/api.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { eventually } from './support/delivery.js';
import { REDIS_URL } from './support/env.js';
import { adminQuery } from './support/postgres-admin.js';

const run = promisify(execFile);
const TSX = ['--import', 'tsx'];

/** This file's queue prefix for processes it runs, unless a test names its own: an api that gets as far as its queue leaves keys. */
const QUEUE_PREFIX = `mozhno-test-processes-${randomBytes(4).toString('hex')}`;

/** Runs an entry point as its own process, as npm scripts do; never throws, returns what it printed. */
async function runEntry(entry: string, args: string[], env: Record<string, string>) {
  try {
    const { stdout, stderr } = await run(process.execPath, [...TSX, entry, ...args], { env: { ...process.env, LOG_LEVEL: 'silent', QUEUE_PREFIX, ...env }, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** `url` logging in as `user` (with `password`, if not null), on database `database` if given. */
function asUser(url: string, user: string, password: string | null, database?: string): string {
  const changed = new URL(url);
  changed.username = user;
  changed.password = password ?? '';
  if (database !== undefined) changed.pathname = `/${database}`;
  return changed.toString();
}

/** Whether the server holds a database of this name. */
async function databaseExists(name: string): Promise<boolean> {
  const client = new pg.Client(pgConnection(db.url.replace(/\/[^/]+$/, '/postgres')));
  await client.connect();
  try {
    return (await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1;
  } finally {
    await client.end();
  }
}

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
  await deleteQueueKeys(REDIS_URL, QUEUE_PREFIX);
});

describe('npm run cli -- bootstrap', () => {
  it('prints exactly one JSON line with projectId, userId, apiKeyId and a working token', async () => {
    const out = await runEntry('src/cli.ts', ['bootstrap', '--project', 'Acme', '--email', 'Ada@Example.com', '--name', 'Ada', '--plan', 'pro'], { DATABASE_URL: db.url });
    expect(out.code).toBe(0);
    const lines = out.stdout.split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    const result = JSON.parse(lines[0]!);
    expect(Object.keys(result)).toEqual(['projectId', 'userId', 'apiKeyId', 'token']);
    expect(result).toMatchObject({ projectId: expect.any(Number), userId: expect.any(Number), apiKeyId: expect.any(Number), token: expect.stringMatching(/^mzk_/) });

    // The user is found by email (any case); the project is always new.
    const again = JSON.parse((await runEntry('src/cli.ts', ['bootstrap', '--project', 'Acme', '--email', 'ada@example.com'], { DATABASE_URL: db.url })).stdout);
    expect(again.userId).toBe(result.userId);
    expect(again.projectId).not.toBe(result.projectId);
    expect(again.token).not.toBe(result.token);

    // 100 emoji are 100 characters, as the API counts them (not 200 UTF-16 units).
    const emoji = JSON.parse((await runEntry('src/cli.ts', ['bootstrap', '--project', '🚀'.repeat(100), '--email', 'ada@example.com'], { DATABASE_URL: db.url })).stdout);
    const conn = createDb(db.url, { poolMax: 1 });
    const named = await conn('projects').where('id', emoji.projectId).first('name').finally(() => conn.destroy());
    expect([...named.name]).toHaveLength(100);
  });

  it('prints only that line when run through npm exactly as SPEC §2 writes it (no npm banner)', async () => {
    // Without the npm_config_* variables of the npm running the tests: the project's .npmrc must do it.
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith('npm_config_')));
    const { stdout } = await run('npm', ['run', 'cli', '--', 'bootstrap', '--project', 'Via npm', '--email', 'npm@example.com'], {
      env: { ...env, LOG_LEVEL: 'silent', DATABASE_URL: db.url },
      timeout: 60_000,
    });
    expect(stdout.endsWith('\n')).toBe(true);
    const lines = stdout.split('\n').slice(0, -1);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ projectId: expect.any(Number), token: expect.stringMatching(/^mzk_/) });
  });

  it('bootstraps run at once with the same new email all succeed and share one user', async () => {
    const conn = createDb(db.url, { poolMax: 8 });
    try {
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) => bootstrap(conn, { project: `Race ${i}`, email: i % 2 ? 'Race@Example.com' : 'race@example.com', plan: 'free' })),
      );
      expect(new Set(results.map((r) => r.userId)).size).toBe(1);
      expect(new Set(results.map((r) => r.projectId)).size).toBe(8);
      const users = await conn('users').whereRaw('lower(email) = ?', ['race@example.com']).pluck('id');
      expect(users).toEqual([results[0]!.userId]);
    } finally {
      await conn.destroy();
    }
  });

  it('creates and migrates a database that does not exist yet', async () => {
    const url = db.url.replace(/\/[^/]+$/, `/${db.name}_fresh`);
    try {
      const out = await runEntry('src/cli.ts', ['bootstrap', '--project', 'P', '--email', 'a@b.c'], { DATABASE_URL: url });
      expect(out.code).toBe(0);
      expect(JSON.parse(out.stdout).projectId).toBe(1);
    } finally {
      await adminQuery(`DROP DATABASE IF EXISTS ${db.name}_fresh WITH (FORCE)`);
    }
  });

  it.each([
    [['bootstrap', '--email', 'a@b.c'], /--project <name> is required/],
    [['bootstrap', '--project', 'P', '--email', 'nope'], /--email <email> is required and must look like/],
    [['bootstrap', '--project', 'P', '--email', 'a@b.c', '--plan', 'gold'], /--plan must be one of free, pro, enterprise/],
    [['bootstrap', '--project', 'P', '--email', 'a@b.c', '--colour', 'red'], /Unknown option '--colour'/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['set-plan', '--project-id', '0x10', '--plan', 'pro'], /--project-id <id> is required: the project's id, in digits/],
    [['set-plan', '--project-id', '1e1', '--plan', 'pro'], /--project-id <id> is required: the project's id, in digits/],
    [['set-plan', '--project-id', ' 7 ', '--plan', 'pro'], /--project-id <id> is required: the project's id, in digits/],
    [['set-plan', '--project-id', '1', '--project-id', '2', '--plan', 'pro'], /--project-id is given more than once/],
    [['set-plan', '--project-id=1', '--plan', 'pro', '--plan=free'], /--plan is given more than once/],
    [['bootstrap', '--project', 'P', '--email', 'a@b.c', '--email', 'd@e.f'], /--email is given more than once/],
    [['create-key', '--email', 'a@b.c'], /--project-id <id> is required/],
    [['bootstrap', '--project', '\u200b', '--email', 'a@b.c'], /--project must not be blank \(only spaces or invisible characters\)/],
    [['bootstrap', '--project', '🚀'.repeat(101), '--email', 'a@b.c'], /--project must be at most 100 characters/],
    [['bootstrap', '--project', 'P', '--email', 'a@b.c', '--name', ' '], /--name must not be empty/],
    [['set-plan', '--project-id', '2147483648', '--plan', 'pro'], /--project-id <id> is required: the project's id, in digits/],
    [['create-key', '--project-id', '1'], /--email <email> is required/],
  ])('refuses %j with a usage line and exit code 2', async (args, message) => {
    const out = await runEntry('src/cli.ts', args, { DATABASE_URL: db.url });
    expect(out.code).toBe(2);
    expect(out.stdout).toBe('');
    expect(out.stderr).toMatch(message);
    expect(out.stderr).toMatch(/usage:/);
  });

  it('set-plan changes a project\'s plan', async () => {
    const created = JSON.parse((await runEntry('src/cli.ts', ['bootstrap', '--project', 'Q', '--email', 'q@example.com'], { DATABASE_URL: db.url })).stdout);
    const out = await runEntry('src/cli.ts', ['set-plan', '--project-id', String(created.projectId), '--plan', 'enterprise'], { DATABASE_URL: db.url });
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual({ projectId: created.projectId, plan: 'enterprise' });
  });

  it('create-key lets an operator back into a project whose keys were lost or disabled, and the project hears of it', async () => {
    const created = JSON.parse((await runEntry('src/cli.ts', ['bootstrap', '--project', 'Locked out', '--email', 'owner@example.com'], { DATABASE_URL: db.url })).stdout);
    const conn = createDb(db.url, { poolMax: 2 });
    try {
      // Whoever held a key disabled the owner's: only an operator can let the owner in again.
      await conn('api_keys').where('id', created.apiKeyId).update({ enabled: false });
      const out = await runEntry('src/cli.ts', ['create-key', '--project-id', String(created.projectId), '--email', 'Owner@Example.com'], { DATABASE_URL: db.url });
      expect(out.code).toBe(0);
      const key = JSON.parse(out.stdout);
      expect(key).toEqual({ projectId: created.projectId, userId: created.userId, apiKeyId: expect.any(Number), token: expect.stringMatching(/^mzk_/) });
      const actor = await new ApiKeyService(conn, new EventLog()).authenticate(key.token);
      expect(actor).toMatchObject({ projectId: created.projectId, apiKeyId: key.apiKeyId, user: { id: created.userId, email: 'owner@example.com' } });
      const events = await conn('events').where('project_id', created.projectId).select('action', 'resource_id as resourceId', 'details', 'user_email as email');
      expect(events).toEqual([
        { action: 'apikey.created', resourceId: key.apiKeyId, details: 'created API key "operator" (enabled: true, for all environments) with the operator command create-key', email: 'owner@example.com' },
      ]);
    } finally {
      await conn.destroy();
    }
    const missing = await runEntry('src/cli.ts', ['create-key', '--project-id', '999999', '--email', 'a@b.c'], { DATABASE_URL: db.url });
    expect([missing.code, missing.stderr]).toEqual([1, 'mozhno: project 999999 does not exist\n']);
  });

  it('set-plan of a project that does not exist says so in one line, exit 1, not as a usage mistake', async () => {
    const out = await runEntry('src/cli.ts', ['set-plan', '--project-id', '999999', '--plan', 'pro'], { DATABASE_URL: db.url });
    expect(out.code).toBe(1);
    expect(out.stdout).toBe('');
    expect(out.stderr.trim().split('\n')).toEqual(['mozhno: project 999999 does not exist']);
  });

  it('set-plan on a database that does not exist names it in one line, exit 1, and creates nothing', async () => {
    const name = `${db.name}_typo`;
    try {
      const out = await runEntry('src/cli.ts', ['set-plan', '--project-id', '1', '--plan', 'pro'], { DATABASE_URL: db.url.replace(/\/[^/]+$/, `/${name}`) });
      expect(out.code).toBe(1);
      expect(out.stdout).toBe('');
      expect(out.stderr.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^mozhno: database in DATABASE_URL does not exist \\(postgres://[^ ]*/${name}\\)`))]);
      expect(await databaseExists(name)).toBe(false);
    } finally {
      await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    }
  });

  it('set-plan on a database not migrated says to run npm run migrate, exit 1, and migrates nothing', async () => {
    const name = `${db.name}_unmigrated`;
    await adminQuery(`CREATE DATABASE ${name}`);
    const url = db.url.replace(/\/[^/]+$/, `/${name}`);
    try {
      const out = await runEntry('src/cli.ts', ['set-plan', '--project-id', '1', '--plan', 'pro'], { DATABASE_URL: url });
      expect(out.code).toBe(1);
      expect(out.stdout).toBe('');
      expect(out.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^mozhno: database not migrated: 001_tenancy, .* missing \(run the migrations: npm run migrate, or the image's migrate command, as the compose migrate service and the Kubernetes migrate Job do\)$/)]);
      const client = new pg.Client(pgConnection(url));
      await client.connect();
      try {
        const { rows } = await client.query<{ count: number }>("SELECT count(*)::int AS count FROM pg_tables WHERE schemaname = 'public'");
        expect(rows[0]!.count).toBe(0);
      } finally {
        await client.end();
      }
    } finally {
      await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    }
  });

  it('three migrations started at once on a fresh database all succeed, one of them applying everything', async () => {
    const url = db.url.replace(/\/[^/]+$/, `/${db.name}_race`);
    try {
      await adminQuery(`CREATE DATABASE ${db.name}_race`);
      const runs = await Promise.all([1, 2, 3].map(() => runEntry('src/db/migrate-cli.ts', [], { DATABASE_URL: url })));
      expect(runs.map((r) => [r.code, r.stderr])).toEqual([[0, ''], [0, ''], [0, '']]);
      // One applied them all; the others, having waited their turn, found nothing left to do.
      const said = runs.map((r) => r.stdout.trim().replace(/: .*/, '')).sort();
      const all = (await migrationSource.getMigrations([])).length;
      expect(said).toEqual([`applied ${all} migration(s)`, 'database is up to date', 'database is up to date']);
    } finally {
      await adminQuery(`DROP DATABASE IF EXISTS ${db.name}_race WITH (FORCE)`);
    }
  });
});

describe('start-up errors are one line, naming the cause, without a stack', () => {
  it('a bad variable stops the api naming the variable', async () => {
    const out = await runEntry('src/api.ts', [], { DATABASE_URL: db.url, WEBHOOK_TIMEOUT_MS: 'soon' });
    expect(out.code).toBe(1);
    expect(out.stderr).toBe('mozhno: invalid configuration: WEBHOOK_TIMEOUT_MS: must be a whole number between 100 and 600000, got "soon"\n');
  });

  it('an unreachable PostgreSQL is named with its URL and how to start it', async () => {
    const out = await runEntry('src/start.ts', [], { DATABASE_URL: 'postgres://me:hunter2@127.0.0.1:1/mozhno' });
    expect(out.code).toBe(1);
    const lines = out.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^mozhno: cannot reach PostgreSQL at postgres:\/\/me:\*\*\*\*@127\.0\.0\.1:1\/mozhno \(ECONNREFUSED\): start it/);
    expect(out.stderr).not.toContain('hunter2');
  });

  it('an unreachable Redis is named with its URL and how to start it', async () => {
    const out = await runEntry('src/start.ts', [], { DATABASE_URL: db.url, REDIS_URL: 'redis://127.0.0.1:1' });
    expect(out.code).toBe(1);
    expect(out.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^mozhno: cannot reach Redis at redis:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\): start it/)]);
  });

  it.each([['src/api.ts'], ['workers/delivery-worker.ts'], ['src/start.ts']])('%s stops on a Redis database the server does not have, in one line, rather than run in database 0', async (entry) => {
    const redis = new Redis(REDIS_URL);
    const [, databases] = (await redis.config('GET', 'databases').finally(() => redis.disconnect())) as [string, string];
    const url = new URL(REDIS_URL);
    url.pathname = `/${databases}`; // the first one past the last
    const out = await runEntry(entry, [], { DATABASE_URL: db.url, REDIS_URL: url.toString(), PORT: '0', WORKER_METRICS_PORT: '0', LOG_LEVEL: 'info' });
    expect(out.code).toBe(1);
    expect(out.stderr.trim().split('\n')).toEqual([
      `mozhno: REDIS_URL names database ${databases}, which Redis at ${url} refuses (ERR DB index is out of range): use one it has (below its \`databases\` setting, 16 by default) or leave the number out for 0`,
    ]);
    expect(out.stdout).not.toMatch(/listening|api on|worker started/);
  });

  it('a PORT another process holds stops the api in one line naming PORT, without a stack', async () => {
    const other = createServer().listen(0);
    await once(other, 'listening');
    const { port } = other.address() as AddressInfo;
    try {
      const out = await runEntry('src/api.ts', [], { DATABASE_URL: db.url, REDIS_URL, PORT: String(port), LOG_LEVEL: 'info' });
      expect(out.code).toBe(1);
      expect(out.stderr).toBe(`mozhno: PORT ${port} is already in use (EADDRINUSE): stop the other process or set PORT\n`);
      expect(out.stdout).not.toMatch(/"level":60|stack/);
    } finally {
      other.close();
    }
  });

  it('a worker whose database user may not read the tables refuses to start in one line naming the user, without a stack', async () => {
    const role = `${db.name}_noprivs`;
    await adminQuery(`CREATE ROLE ${role} LOGIN`);
    try {
      const url = db.url.replace(/\/\/[^/]*@?127\.0\.0\.1/, `//${role}@127.0.0.1`);
      const out = await runEntry('workers/delivery-worker.ts', [], { DATABASE_URL: url, REDIS_URL, WORKER_METRICS_PORT: '0', LOG_LEVEL: 'info' });
      expect(out.code).toBe(1);
      expect(out.stderr.trim().split('\n')).toEqual([
        `mozhno: PostgreSQL at ${url} refuses user "${role}" a table mozhno needs (42501: permission denied for table knex_migrations): grant it SELECT, INSERT, UPDATE and DELETE on mozhno's tables and USAGE on their schema, or set DATABASE_URL to a user that has them`,
      ]);
      expect(out.stdout).not.toMatch(/"level":60|stack/);

      // So do an operator command, and a migrate run as a user that does not own the schema.
      const setPlan = await runEntry('src/cli.ts', ['set-plan', '--project-id', '1', '--plan', 'pro'], { DATABASE_URL: url });
      expect(setPlan.code).toBe(1);
      expect(setPlan.stderr).toMatch(new RegExp(`^mozhno: PostgreSQL at \\S+ refuses user "${role}" a table mozhno needs \\(42501: permission denied for table knex_migrations\\): grant it SELECT`));
      const migrate = await runEntry('src/db/migrate-cli.ts', [], { DATABASE_URL: url });
      expect(migrate.code).toBe(1);
      expect(migrate.stderr.trim().split('\n')).toEqual([
        expect.stringMatching(
          new RegExp(`^mozhno: PostgreSQL at \\S+ refuses user "${role}" what a migration does \\(42501: permission denied for [^)]+\\): run migrations as the user that owns mozhno's schema and tables`),
        ),
      ]);
    } finally {
      await adminQuery(`DROP ROLE IF EXISTS ${role}`);
    }
  });

  it('the migrate command applies migrations and then says the database is up to date', async () => {
    const out = await runEntry('src/db/migrate-cli.ts', [], { DATABASE_URL: db.url });
    expect(out).toMatchObject({ code: 0, stdout: 'database is up to date\n' });
  });

  it('on a database migrated by newer code, migrate says so and changes nothing (exit 0), and bootstrap goes on', async () => {
    const newer = await createTestDatabase();
    const client = new pg.Client(pgConnection(newer.url));
    await client.connect();
    const applied = async () => (await client.query<{ name: string; batch: number }>('SELECT name, batch FROM knex_migrations ORDER BY id')).rows;
    try {
      await client.query("INSERT INTO knex_migrations (name, batch, migration_time) VALUES ('999_future', 99, now())");
      const before = await applied();
      const out = await runEntry('src/db/migrate-cli.ts', [], { DATABASE_URL: newer.url });
      expect(out).toEqual({ code: 0, stdout: 'database is newer than this code: it has 1 migration(s) this code does not know (999_future); nothing applied\n', stderr: '' });
      expect(await applied()).toEqual(before);

      const boot = await runEntry('src/cli.ts', ['bootstrap', '--project', 'P', '--email', 'a@b.c'], { DATABASE_URL: newer.url });
      expect(boot.code).toBe(0);
      expect(JSON.parse(boot.stdout)).toMatchObject({ projectId: expect.any(Number), token: expect.stringMatching(/^mzk_/) });
      expect(await applied()).toEqual(before);

      // Unknown migrations and some of this code's missing: not a newer release of this code, so not "newer".
      await client.query("DELETE FROM knex_migrations WHERE name = '010_environment_indexes_and_deferred_segment_check'");
      const diverged = await runEntry('src/db/migrate-cli.ts', [], { DATABASE_URL: newer.url });
      expect(diverged.code).toBe(1);
      expect(diverged.stderr.trim().split('\n')).toEqual([
        'mozhno: database has migrations this code does not know (999_future) and lacks some of its own (010_environment_indexes_and_deferred_segment_check): it was migrated by other code; nothing applied',
      ]);
    } finally {
      await client.end();
      await newer.drop();
    }
  });

  it('a knex lock left set by a migrate killed mid-way does not block the next one', async () => {
    const client = new pg.Client(pgConnection(db.url));
    await client.connect();
    try {
      await client.query('UPDATE knex_migrations_lock SET is_locked = 1');
    } finally {
      await client.end();
    }
    const out = await runEntry('src/db/migrate-cli.ts', [], { DATABASE_URL: db.url });
    expect(out).toMatchObject({ code: 0, stdout: 'database is up to date\n' });
  });

  it.each([
    ['npm start', 'src/start.ts', []],
    ['bootstrap', 'src/cli.ts', ['bootstrap', '--project', 'P', '--email', 'a@b.c']],
    ['set-plan', 'src/cli.ts', ['set-plan', '--project-id', '1', '--plan', 'pro']],
    ['npm run migrate', 'src/db/migrate-cli.ts', []],
  ])('%s names a refused login as such (the user, what PostgreSQL said), not as a PostgreSQL to start', async (_, entry, args) => {
    const url = asUser(db.url, 'nosuchrole_mozhno', 'hunter2');
    const out = await runEntry(entry, args, { DATABASE_URL: url, REDIS_URL, QUEUE_PREFIX: `mozhno-test-login-${process.pid}` });
    expect(out.code).toBe(1);
    expect(out.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^mozhno: PostgreSQL at postgres:\/\/nosuchrole_mozhno:\*\*\*\*@[^ ]+\/\w+ refused the login of user "nosuchrole_mozhno" \(28000: role "nosuchrole_mozhno" does not exist\): check the user and password in DATABASE_URL$/),
    ]);
    expect(out.stderr).not.toContain('hunter2');
  });

  it('npm start and bootstrap say the user may not create the database, rather than a PostgreSQL to start; and a database it may not connect to is named so', async () => {
    const role = `mozhno_t_${randomBytes(5).toString('hex')}_nocreate`;
    const missing = `${db.name}_nocreate`;
    const closed = `${db.name}_closed`;
    await adminQuery(`CREATE ROLE ${role} LOGIN NOCREATEDB`);
    try {
      for (const [entry, args] of [['src/start.ts', []], ['src/cli.ts', ['bootstrap', '--project', 'P', '--email', 'a@b.c']]] as const) {
        const out = await runEntry(entry, [...args], { DATABASE_URL: asUser(db.url, role, null, missing), REDIS_URL });
        expect(out.code).toBe(1);
        expect(out.stderr.trim().split('\n')).toEqual([
          `mozhno: database in DATABASE_URL does not exist (${asUser(db.url, role, null, missing)}) and user "${role}" may not create databases: create it first (as a user who may: \`createdb -O ${role} ${missing}\`) or grant "${role}" CREATEDB`,
        ]);
      }
      expect(await databaseExists(missing)).toBe(false);

      await adminQuery(`CREATE DATABASE ${closed}`);
      await adminQuery(`REVOKE CONNECT ON DATABASE ${closed} FROM PUBLIC`);
      const out = await runEntry('src/db/migrate-cli.ts', [], { DATABASE_URL: asUser(db.url, role, null, closed) });
      expect(out.code).toBe(1);
      expect(out.stderr.trim().split('\n')).toEqual([
        expect.stringMatching(new RegExp(`^mozhno: PostgreSQL at [^ ]+/${closed} denied user "${role}" \\(42501: permission denied for database "${closed}"\\): grant the user access \\(CONNECT\\)`)),
      ]);
    } finally {
      await adminQuery(`DROP DATABASE IF EXISTS ${missing} WITH (FORCE)`);
      await adminQuery(`DROP DATABASE IF EXISTS ${closed} WITH (FORCE)`);
      await adminQuery(`DROP ROLE IF EXISTS ${role}`);
    }
  });

  it('npm start names a Redis refusing the login (wrong password, or none given) as such, not as a Redis to start', async () => {
    // A user Redis has no such ACL entry for: WRONGPASS, from the real Redis.
    const wrong = new URL(REDIS_URL);
    wrong.username = 'mozhno_t_nosuchuser';
    wrong.password = 'hunter2';
    const refused = await runEntry('src/start.ts', [], { DATABASE_URL: db.url, REDIS_URL: wrong.toString() });
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^mozhno: Redis at redis:\/\/mozhno_t_nosuchuser:\*\*\*\*@[^ ]+ refused the login \(WRONGPASS [^)]*\): check the password \(and user name\) in REDIS_URL$/),
    ]);
    expect(refused.stderr).not.toContain('hunter2');

    // A Redis that requires a password, given none: it answers every command NOAUTH, as this one does.
    const server = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.on('data', (chunk: Buffer) => {
        const commands = chunk.toString('latin1').match(/(?:^|\r\n)\*\d+\r\n/g)?.length ?? 1;
        for (let i = 0; i < commands; i++) socket.write('-NOAUTH Authentication required.\r\n');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `redis://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const out = await runEntry('src/start.ts', [], { DATABASE_URL: db.url, REDIS_URL: url });
      expect(out.code).toBe(1);
      expect(out.stderr.trim().split('\n')).toEqual([`mozhno: Redis at ${url} refused the login (NOAUTH Authentication required.): check the password (and user name) in REDIS_URL`]);
    } finally {
      server.close();
    }
  });

  it.each([
    ['a database that does not exist', '_missing', /^mozhno: database in DATABASE_URL does not exist \(postgres:\/\/[^ ]*_missing\)/],
    ['a database not migrated', '_bare', /^mozhno: database not migrated: 001_tenancy, .* missing \(run the migrations: npm run migrate, or the image's migrate command/],
  ])('a worker refuses to start on %s, in one line, rather than fail every job', async (_, suffix, line) => {
    const name = `${db.name}${suffix}`;
    if (suffix === '_bare') await adminQuery(`CREATE DATABASE ${name}`);
    try {
      const out = await runEntry('workers/delivery-worker.ts', [], { DATABASE_URL: db.url.replace(/\/[^/]+$/, `/${name}`), WORKER_METRICS_PORT: '0' });
      expect(out.code).toBe(1);
      expect(out.stderr.trim().split('\n')).toEqual([expect.stringMatching(line)]);
    } finally {
      await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    }
  });
});

describe('npm start', () => {
  it('creates the database, migrates it, runs an api and a worker, says where the API listens, and stops on Ctrl-C', async () => {
    const url = db.url.replace(/\/[^/]+$/, `/${db.name}_start`);
    const prefix = `mozhno-test-start-${process.pid}`;
    const child = spawn('npm', ['start'], {
      // PORT=0: the port the api got is the one said.
      env: { ...process.env, DATABASE_URL: url, REDIS_URL, QUEUE_PREFIX: prefix, PORT: '0', WORKER_METRICS_PORT: '0', LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (code, signal) => resolve([code, signal])));
    try {
      const port = Number(await eventually(() => /mozhno: api on http:\/\/localhost:(\d+) /.exec(out)?.[1], 60_000));
      expect(port).toBeGreaterThan(0);
      expect(out).toContain('mozhno: created the database named in DATABASE_URL');
      expect(out).toMatch(/mozhno: applied \d+ migration\(s\)/);
      const ready = await eventually(async () => {
        const answer = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null);
        return answer?.status === 200 ? answer.text() : undefined;
      }, 30_000);
      expect(ready).toContain('ready');
      await eventually(() => out.includes('"msg":"worker started"') || undefined, 30_000);
      // Ctrl-C: the terminal signals the whole process group (npm goes at once, as it does there),
      // and npm and tsx may pass it on again: the same Ctrl-C, arriving twice within moments.
      process.kill(-child.pid!, 'SIGINT');
      await new Promise((resolve) => setTimeout(resolve, 20));
      try {
        process.kill(-child.pid!, 'SIGINT'); // the group outlives npm, which goes at once
      } catch {
        // nothing left in the group: it all stopped at once
      }
      const [code, signal] = await exited;
      expect(code === 0 || signal === 'SIGINT').toBe(true);
      // A clean stop, as for one signal: the worker drained, nothing was cut short.
      await eventually(() => out.includes('"msg":"worker stopped"') || undefined, 30_000);
      expect(out).not.toContain('stopping now');
      // The api and the worker stop too: nothing answers on the port any more.
      await eventually(async () => ((await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null)) === null ? true : undefined), 30_000);
    } finally {
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
      await exited;
      await deleteQueueKeys(REDIS_URL, prefix);
      await adminQuery(`DROP DATABASE IF EXISTS ${db.name}_start WITH (FORCE)`);
    }
  });
});

describe('npm run worker', () => {
  it('starts the worker with a libuv pool of 64 threads, so slow name lookups cannot take every thread, and stops cleanly on one Ctrl-C', async () => {
    const prefix = `mozhno-test-pool-${process.pid}`;
    const child = spawn('npm', ['run', '-s', 'worker'], {
      env: { ...process.env, DATABASE_URL: db.url, REDIS_URL, QUEUE_PREFIX: prefix, WORKER_METRICS_PORT: '0', LOG_LEVEL: 'info', UV_THREADPOOL_SIZE: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    /** Whole lines only: the last one may still be arriving. */
    const lines = () => out.split('\n').slice(0, -1).flatMap((line) => {
      try {
        return [JSON.parse(line) as { msg: string; threadPool?: number }];
      } catch {
        return [];
      }
    });
    try {
      const started = await eventually(() => lines().find((l) => l.msg === 'worker started'), 20_000);
      expect(started.threadPool).toBe(WORKER_THREAD_POOL_SIZE);
      expect(out).not.toContain('UV_THREADPOOL_SIZE is small');
      // Ctrl-C in a terminal: the group's SIGINT, and the same again from npm and tsx passing it on.
      process.kill(-child.pid!, 'SIGINT');
      await new Promise((resolve) => setTimeout(resolve, 20));
      try {
        process.kill(-child.pid!, 'SIGINT');
      } catch {
        // the group is gone already
      }
      // One clean stop, not "stop now": the worker drains and says so.
      await eventually(() => lines().some((l) => l.msg === 'worker stopped'), 20_000);
    } finally {
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGTERM');
      await exited;
      // npm may exit before the worker it started: its keys are deleted once the worker itself has stopped.
      await eventually(() => lines().some((l) => l.msg === 'worker stopped'), 20_000).catch(() => undefined);
      await deleteQueueKeys(REDIS_URL, prefix);
    }
  });
});
