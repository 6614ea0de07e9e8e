import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrationSource } from '../../migrations/index.js';
import { createDb, pgConnection, type Db } from '../../src/db/knex.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { eventually } from '../support/delivery.js';

const run = promisify(execFile);
const MIGRATE = ['--import', 'tsx', 'src/db/migrate-cli.ts'];
const INDEX = 'deliveries_integration_newest_index';

/** `npm run migrate` as its own process; never throws, returns what it printed. */
async function migrate(url: string) {
  try {
    const { stdout, stderr } = await run(process.execPath, MIGRATE, { env: { ...process.env, DATABASE_URL: url }, timeout: 20_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('npm run migrate stopped while 009 builds its index CONCURRENTLY', () => {
  let database: TestDatabase;
  let db: Db;

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDb(database.url, { poolMax: 2 });
    const [project] = await db('projects').insert({ name: 'P' }, ['id']);
    const [integration] = await db('integrations').insert({ project_id: project.id, name: 'I', config_json: '{}', event_subscriptions_json: '[]', url: 'https://example.test/', events: [] }, ['id']);
    await db.raw(`INSERT INTO deliveries (integration_id, webhook_id, action, status, duration_ms) SELECT ?, 'w', 'a', 'success', 1 FROM generate_series(1, 1000)`, [integration.id]);
  });

  afterAll(async () => {
    await db?.destroy();
    await database?.drop();
  });

  /** The backends of this database running a statement on INDEX, but for the test's own. */
  const statementsOnIndex = async () =>
    (
      await db.raw(`SELECT pid, wait_event_type AS "waitEventType" FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active' AND query LIKE ?`, [`%INDEX CONCURRENTLY%${INDEX}%`])
    ).rows as Array<{ pid: number; waitEventType: string | null }>;

  // An open transaction holds the stopped run's build at a phase of the test's choosing (where a
  // worker's write or a long report or pg_dump would), so that build outlives its client for
  // exactly as long as the test says, whatever the machine's speed.
  it.each([
    ['waiting for writers before build', `INSERT INTO deliveries (integration_id, webhook_id, action, status, duration_ms) SELECT integration_id, 'w', 'a', 'success', 1 FROM deliveries LIMIT 1`],
    ['waiting for old snapshots', 'SELECT 1'],
  ])('runs again at once and succeeds, the stopped run’s build still %s in PostgreSQL', async (phase, holding) => {
    // Back to 008, the state 009 starts from.
    while ((await db('knex_migrations').max('name', { as: 'name' }).first())?.name !== '008_events_vacuum_threshold') await db.migrate.down({ migrationSource });
    const holder = new pg.Client(pgConnection(database.url));
    await holder.connect();
    let first: ChildProcess | undefined;
    try {
      await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await holder.query(holding);

      first = spawn(process.execPath, MIGRATE, { env: { ...process.env, DATABASE_URL: database.url }, stdio: 'ignore' });
      const exited = once(first, 'exit');
      const orphan = await eventually(async () => {
        const { rows } = await db.raw(`SELECT pid FROM pg_stat_progress_create_index WHERE datid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND phase = ?`, [phase]);
        return (rows as Array<{ pid: number }>)[0]?.pid;
      }, 20_000);
      first.kill('SIGKILL'); // no chance to say anything: PostgreSQL learns of it only when the build next writes to the client
      await exited;
      expect((await statementsOnIndex()).map((s) => s.pid)).toEqual([orphan]);

      const again = migrate(database.url);
      // Once the new run waits (on the holder, or on the stopped run's build), the holder lets go.
      await eventually(async () => (await statementsOnIndex()).some((s) => s.pid !== orphan && s.waitEventType === 'Lock'), 20_000);
      await holder.query('COMMIT');

      expect(await again).toEqual({
        code: 0,
        stdout: 'applied 3 migration(s): 009_deliveries_newest_by_time, 010_environment_indexes_and_deferred_segment_check, 011_integration_previous_secret\n',
        stderr: `mozhno: knex: cancelled backend ${orphan}: "CREATE INDEX CONCURRENTLY ${INDEX} ON deliveries (integration_id, created_at, id)", left running by a migrate that was stopped\n`,
      });
      const { rows } = await db.raw(`SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(?)`, [INDEX]);
      expect(rows).toEqual([{ indisvalid: true }]);
      expect(await statementsOnIndex()).toEqual([]);
    } finally {
      first?.kill('SIGKILL');
      await holder.end();
    }
  });
});
